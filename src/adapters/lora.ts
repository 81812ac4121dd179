/**
 * LoRA adapters as low-rank branches: every Linear/Conv of the networks has `down`/`up` graph inputs
 * (networks/blocks.ts). Applying adapters means feeding their factors — the sessions are never rebuilt.
 * Several adapters stack by concatenating factors along the rank axis, which equals summing their deltas:
 *   W' = W + Σ_k s_k·(α_k/r_k)·up_k·down_k.
 * The key map is built forward from the model's own module names (ComfyUI `comfy/lora.py` does the same);
 * adapter modules that match nothing are reported.
 */
import { AtelierError } from '../contract/errors.ts';
import type { LoraSlot } from '../networks/blocks.ts';
import { readSafetensorsHeader, readTensorF32, tensorRefOf } from '../weights/safetensors.ts';
import { candidateKeys, splitLoraKey, splitUnsupportedKey, type LoraTarget } from './lora-format.ts';

export interface LoraModuleFactors {
  down: Float32Array; // [r, in] or [r, in, kh, kw]
  up: Float32Array; // [out, r] or [out, r, 1, 1]
  rank: number;
  downShape: number[];
  upShape: number[];
  alpha?: number;
}

export interface ParsedLora {
  file: string;
  modules: Map<string, LoraModuleFactors>;
  /** keys not applied: unknown keys, incomplete modules and modules of unsupported kinds (LoHa, LoKr, DoRA …) */
  unsupported: string[];
  /** names of the unsupported adapter kinds met (e.g. "LoHa") */
  unsupportedKinds: string[];
}

interface ModuleKeys {
  down?: string;
  up?: string;
  alpha?: string;
  mid?: string;
  /** keys of unsupported kinds naming this module */
  other: string[];
}

/**
 * down' [r, in, kh, kw] = Σ_s mid[r, s, kh, kw]·down[s, in]: a 1×1 conv followed by a kh×kw conv is one kh×kw conv
 * (bias-free, so zero padding commutes with the 1×1 part). LyCORIS `modules/locon.py` (use_tucker/CP).
 */
function foldMid(down: Float32Array, downShape: number[], mid: Float32Array, midShape: number[]): Float32Array {
  const [r, s, kh, kw] = midShape;
  const inF = downShape[1];
  const k = kh * kw;
  const out = new Float32Array(r * inF * k);
  for (let a = 0; a < r; a++) {
    for (let b = 0; b < s; b++) {
      for (let i = 0; i < inF; i++) {
        const d = down[b * inF + i];
        if (d === 0) continue;
        const o = (a * inF + i) * k;
        const m = (a * s + b) * k;
        for (let j = 0; j < k; j++) out[o + j] += mid[m + j] * d;
      }
    }
  }
  return out;
}

export async function readLoraFile(file: string, field = 'loras'): Promise<ParsedLora> {
  if (!/\.safetensors$/i.test(file)) {
    throw new AtelierError('ADAPTER_INVALID', `LoRA "${file}" is not a .safetensors file; pickled .pt/.ckpt/.bin files are refused (loading them runs code)`, { field });
  }
  const header = await readSafetensorsHeader(file).catch((cause) => {
    throw new AtelierError('ADAPTER_INVALID', `LoRA "${file}": ${(cause as Error).message}`, { field, cause });
  });
  const parts = new Map<string, ModuleKeys>();
  const unsupported: string[] = [];
  const kinds = new Set<string>();
  const entry = (module: string) => {
    let p = parts.get(module);
    if (!p) parts.set(module, (p = { other: [] }));
    return p;
  };
  for (const key of header.tensors.keys()) {
    const split = splitLoraKey(key);
    if (split) {
      entry(split.module)[split.role] = key;
      continue;
    }
    const other = splitUnsupportedKey(key);
    if (other) {
      entry(other.module).other.push(key);
      kinds.add(other.kind);
      continue;
    }
    unsupported.push(key);
  }
  const modules = new Map<string, LoraModuleFactors>();
  const bad = (module: string, why: string) => new AtelierError('ADAPTER_INVALID', `LoRA "${file}": module "${module}" ${why}`, { field });
  for (const [module, p] of parts) {
    if (!p.down || !p.up || p.other.length > 0) {
      unsupported.push(...[p.down, p.up, p.mid, p.alpha, ...p.other].filter((k): k is string => !!k));
      continue;
    }
    const downRef = tensorRefOf(header, p.down);
    const upRef = tensorRefOf(header, p.up);
    let down = await readTensorF32(downRef);
    let downShape = downRef.shape;
    if (p.mid) {
      const midRef = tensorRefOf(header, p.mid);
      const [r, s] = midRef.shape;
      if (midRef.shape.length !== 4 || downShape.length !== 4 || downShape[0] !== s || downShape[2] !== 1 || downShape[3] !== 1) {
        throw bad(module, `has lora_mid ${JSON.stringify(midRef.shape)} and lora_down ${JSON.stringify(downShape)}; expected [r, r, kh, kw] and [r, in, 1, 1]`);
      }
      down = foldMid(down, downShape, await readTensorF32(midRef), midRef.shape);
      downShape = [r, downShape[1], midRef.shape[2], midRef.shape[3]];
    }
    const rank = downShape[0];
    if (upRef.shape.length < 2 || upRef.shape[1] !== rank) {
      throw bad(module, `has down rank ${rank} but up ${JSON.stringify(upRef.shape)}`);
    }
    let alpha: number | undefined;
    if (p.alpha) {
      const a = await readTensorF32(tensorRefOf(header, p.alpha));
      if (a.length !== 1 || !Number.isFinite(a[0])) throw bad(module, `has alpha ${JSON.stringify(Array.from(a.slice(0, 4)))}; expected one finite number`);
      alpha = a[0];
    }
    modules.set(module, { down, up: await readTensorF32(upRef), rank, downShape, upShape: upRef.shape, alpha });
  }
  if (modules.size === 0) {
    const sample = [...header.tensors.keys()].slice(0, 3).join(', ');
    const why = kinds.size > 0 ? ` (${[...kinds].join('/')} adapters are not supported; LoRA and LyCORIS LoCon are)` : '';
    throw new AtelierError('ADAPTER_INVALID', `"${file}" holds no LoRA factors${why}; keys look like: ${sample}`, { field });
  }
  return { file, modules, unsupported, unsupportedKinds: [...kinds] };
}

export interface SlotTable {
  /** candidate adapter module key → (target, slot) */
  byKey: Map<string, { target: LoraTarget; slot: LoraSlot }>;
}

/** Forward key map: every LoRA slot of the model under every name an adapter may use for it. */
export function buildSlotTable(slots: Record<LoraTarget, readonly LoraSlot[]>, sgmName?: (unetModule: string) => string | undefined): SlotTable {
  const byKey = new Map<string, { target: LoraTarget; slot: LoraSlot }>();
  for (const target of Object.keys(slots) as LoraTarget[]) {
    for (const slot of slots[target]) {
      const sgm = target === 'unet' ? sgmName?.(slot.module) : undefined;
      for (const k of candidateKeys(target, slot.module, sgm)) byKey.set(k, { target, slot });
    }
  }
  return { byKey };
}

export interface AppliedLora {
  lora: ParsedLora;
  scale: number;
}

type Feed = { data: Float32Array; dims: number[] };
export type LoraFeeds = Record<LoraTarget, Record<string, Feed>>;

/**
 * Factors for every slot touched by the given adapters, stacked along the rank axis with each adapter's
 * scale·α/r folded into its `up` factor. Returns the feeds and the adapter modules that matched nothing.
 */
export function loraFeeds(table: SlotTable, applied: readonly AppliedLora[]): { feeds: LoraFeeds; unmatched: string[]; matched: number } {
  const perSlot = new Map<string, { target: LoraTarget; slot: LoraSlot; parts: { f: LoraModuleFactors; s: number }[] }>();
  const unmatched: string[] = [];
  let matched = 0;
  for (const { lora, scale } of applied) {
    for (const [module, f] of lora.modules) {
      const hit = table.byKey.get(module);
      if (!hit) {
        unmatched.push(`${lora.file}: ${module}`);
        continue;
      }
      matched++;
      const s = scale * (f.alpha !== undefined ? f.alpha / f.rank : 1);
      // input names repeat across networks (both text encoders have `lora_down:text_model.…`): key by target too
      const key = `${hit.target}\u0000${hit.slot.downInput}`;
      const e = perSlot.get(key) ?? { target: hit.target, slot: hit.slot, parts: [] };
      e.parts.push({ f, s });
      perSlot.set(key, e);
    }
  }
  const feeds: LoraFeeds = { unet: {}, textEncoder1: {}, textEncoder2: {} };
  for (const { target, slot, parts } of perSlot.values()) {
    const kElems = slot.kind === 'conv' ? slot.kernel[0] * slot.kernel[1] : 1;
    const rowLen = slot.inFeatures * kElems; // one rank row of `down`
    const R = parts.reduce((a, p) => a + p.f.rank, 0);
    const down = new Float32Array(R * rowLen);
    const up = new Float32Array(slot.outFeatures * R);
    let r0 = 0;
    for (const { f, s } of parts) {
      if (f.down.length !== f.rank * rowLen || f.up.length !== slot.outFeatures * f.rank) {
        throw new AtelierError(
          'ADAPTER_INVALID',
          `LoRA module for "${slot.module}" has shapes down ${JSON.stringify(f.downShape)} / up ${JSON.stringify(f.upShape)}, the model needs [r, ${slot.inFeatures}${slot.kind === 'conv' ? `, ${slot.kernel.join(', ')}` : ''}] / [${slot.outFeatures}, r]`,
          { field: 'loras' },
        );
      }
      down.set(f.down, r0 * rowLen); // rows r0 … r0+r
      for (let o = 0; o < slot.outFeatures; o++) {
        for (let r = 0; r < f.rank; r++) up[o * R + r0 + r] = f.up[o * f.rank + r] * s; // columns r0 … r0+r
      }
      r0 += f.rank;
    }
    const downDims = slot.kind === 'linear' ? [R, slot.inFeatures] : [R, slot.inFeatures, slot.kernel[0], slot.kernel[1]];
    const upDims = slot.kind === 'linear' ? [slot.outFeatures, R] : [slot.outFeatures, R, 1, 1];
    feeds[target][slot.downInput] = { data: down, dims: downDims };
    feeds[target][slot.upInput] = { data: up, dims: upDims };
  }
  return { feeds, unmatched, matched };
}

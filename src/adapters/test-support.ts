/**
 * Test-only helpers for the adapter tests: temp folders, a copy of the oracle's diffusers folder with some weights
 * replaced (adapters merged into plain weights), the merge arithmetic done independently of lora.ts, a seeded
 * generator for synthetic adapter files, and small comparisons.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { readSafetensorsHeader, readTensorF32, readTensorRaw, tensorRefOf, writeSafetensors, type WriteEntry } from '../weights/safetensors.ts';

export const ORACLE = oracleDir();
export const TINY = path.join(ORACLE, 'tiny-sdxl');
export const LORA_DIR = path.join(ORACLE, 'lora');
export const LORA_FILES = ['kohya_lora', 'peft_lora', 'diffusers_lora', 'kohya_diffusers_names_lora'] as const;
export const loraPath = (name: string) => path.join(LORA_DIR, `${name}.safetensors`);
export const TI_FILE = path.join(ORACLE, 'ti', 'tiny_sdxl_ti.safetensors');

/** A fresh folder under the OS temp dir (removed by `removeTmp`). */
export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `atelier-${prefix}-`));
}

export function removeTmp(dir: string | undefined): void {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

/** Every tensor of a safetensors file as float32 (stored order), with its shape. */
export async function readAllF32(file: string): Promise<Map<string, { data: Float32Array; shape: number[] }>> {
  const h = await readSafetensorsHeader(file);
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const name of h.tensors.keys()) {
    const ref = tensorRefOf(h, name);
    out.set(name, { data: await readTensorF32(ref), shape: ref.shape });
  }
  return out;
}

/** Writes float32 tensors (name → [data, shape]) to a .safetensors file. */
export async function writeF32(file: string, tensors: Record<string, [Float32Array, number[]]>): Promise<void> {
  await writeSafetensors(
    file,
    Object.entries(tensors).map(([name, [data, shape]]) => ({ name, dtype: 'F32' as const, shape, data })),
  );
}

const WEIGHT_FILES: Record<string, string> = {
  unet: 'diffusion_pytorch_model.safetensors',
  vae: 'diffusion_pytorch_model.safetensors',
  text_encoder: 'model.safetensors',
  text_encoder_2: 'model.safetensors',
};

/**
 * A copy of the oracle's diffusers folder in `dst`: every entry symlinked, except the named components, whose
 * weight file is rewritten with the given tensors replaced (same dtype F32, same shape) and config.json linked.
 */
export async function writeModelCopy(dst: string, replace: Partial<Record<'unet' | 'text_encoder' | 'text_encoder_2', Map<string, Float32Array>>>): Promise<string> {
  fs.mkdirSync(dst, { recursive: true });
  for (const entry of fs.readdirSync(TINY)) {
    const changes = replace[entry as keyof typeof replace];
    if (!changes) {
      fs.symlinkSync(path.join(TINY, entry), path.join(dst, entry));
      continue;
    }
    fs.mkdirSync(path.join(dst, entry));
    fs.symlinkSync(path.join(TINY, entry, 'config.json'), path.join(dst, entry, 'config.json'));
    const src = path.join(TINY, entry, WEIGHT_FILES[entry]);
    const h = await readSafetensorsHeader(src);
    const used = new Set<string>();
    const entries: WriteEntry[] = [];
    for (const [name, e] of h.tensors) {
      const v = changes.get(name);
      if (v) {
        if (e.dtype !== 'F32' || v.length !== e.byteLength / 4) throw new Error(`${entry}/${name}: replacement of ${v.length} values for ${e.dtype} ${JSON.stringify(e.shape)}`);
        used.add(name);
        entries.push({ name, dtype: 'F32', shape: e.shape, data: v });
      } else {
        const ref = tensorRefOf(h, name);
        entries.push({ name, dtype: e.dtype, shape: e.shape, data: async () => new Uint8Array(await readTensorRaw(ref)) });
      }
    }
    const missing = [...changes.keys()].filter((k) => !used.has(k));
    if (missing.length > 0) throw new Error(`${entry}: no tensors ${missing.join(', ')}`);
    await writeSafetensors(path.join(dst, entry, WEIGHT_FILES[entry]), entries);
  }
  return dst;
}

/**
 * W[o, i·k] += s·Σ_r up[o, r]·down[r, i·k] in float64, for Linear ([out, in]) and Conv ([out, in, kh, kw]) weights
 * alike (k = kh·kw; `up` is [out, r] or [out, r, 1, 1]).
 */
export function addLowRank(w: Float32Array, up: Float32Array, down: Float32Array, rank: number, s: number): Float32Array {
  const out = Float32Array.from(w);
  const outF = up.length / rank;
  const row = down.length / rank;
  if (outF * row !== w.length) throw new Error(`low-rank delta [${outF}, ${row}] does not fit a weight of ${w.length} values`);
  for (let o = 0; o < outF; o++) {
    for (let j = 0; j < row; j++) {
      let acc = 0;
      for (let r = 0; r < rank; r++) acc += up[o * rank + r] * down[r * row + j];
      out[o * row + j] = w[o * row + j] + s * acc;
    }
  }
  return out;
}

/** mulberry32: a small seeded generator for synthetic test tensors (values in [−amp, amp)). */
export function seeded(seed: number): (n: number, amp?: number) => Float32Array {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return (n, amp = 1) => Float32Array.from({ length: n }, () => (2 * next() - 1) * amp);
}

export function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** NCHW [n, 3, H, W] → NHWC like diffusers' `output/image_np`. */
export function toNhwc(t: Float32Array, n: number, H: number, W: number): Float32Array {
  const out = new Float32Array(t.length);
  const plane = H * W;
  for (let b = 0; b < n; b++) {
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < plane; i++) out[(b * plane + i) * 3 + c] = t[(b * 3 + c) * plane + i];
    }
  }
  return out;
}

/**
 * The single-file ("original", Stability SGM) SDXL layout → canonical diffusers names.
 * Module correspondences learned from diffusers `scripts/convert_diffusers_to_original_sdxl.py`
 * and `src/diffusers/loaders/single_file_utils.py`; expressed here as generated tables.
 */
import type { ComponentName, TensorRef } from '../types.ts';
import type { SafetensorsHeader } from '../safetensors.ts';
import { addSubTable, canonicalVaeShape, isIgnoredKey, mapByLongestPrefix, type PrefixTable } from './key-map.ts';

/** Where each component lives in a single file. */
export const SINGLE_FILE_PARTS: ReadonlyArray<{ component: ComponentName; prefix: string; label: string }> = [
  { component: 'unet', prefix: 'model.diffusion_model.', label: 'UNet (model.diffusion_model.*)' },
  { component: 'vae', prefix: 'first_stage_model.', label: 'VAE (first_stage_model.*)' },
  { component: 'textEncoder1', prefix: 'conditioner.embedders.0.transformer.', label: 'text encoder 1 (conditioner.embedders.0.transformer.*)' },
  { component: 'textEncoder2', prefix: 'conditioner.embedders.1.model.', label: 'text encoder 2 (conditioner.embedders.1.model.*)' },
];

/** A key that does not map 1:1: a fused q/k/v matrix split in three, or a stored-transposed matrix. */
export type SpecialKey = { kind: 'split3'; targets: [string, string, string] } | { kind: 'transpose'; target: string };

export interface ComponentKeyMap {
  /** SGM module path (relative to the component prefix) → diffusers module path */
  table: PrefixTable;
  /** whole SGM keys with special handling (checked before `table`) */
  special: Map<string, SpecialKey>;
}

export interface UnetStructure {
  levels: number;
  layersPerBlock: number;
  /** attention in down level i */
  downAttention: boolean[];
  /** attention in up level i (0 = deepest) */
  upAttention: boolean[];
}

// ResBlock sub-modules: SGM name → diffusers name
const UNET_RESNET: ReadonlyArray<readonly [string, string]> = [
  ['in_layers.0', 'norm1'], ['in_layers.2', 'conv1'], ['emb_layers.1', 'time_emb_proj'],
  ['out_layers.0', 'norm2'], ['out_layers.3', 'conv2'], ['skip_connection', 'conv_shortcut'],
];

const UNET_TOP: ReadonlyArray<readonly [string, string]> = [
  ['time_embed.0', 'time_embedding.linear_1'], ['time_embed.2', 'time_embedding.linear_2'],
  ['label_emb.0.0', 'add_embedding.linear_1'], ['label_emb.0.2', 'add_embedding.linear_2'],
  ['input_blocks.0.0', 'conv_in'], ['out.0', 'conv_norm_out'], ['out.2', 'conv_out'],
];

/** SGM UNet module table for a level structure (SDXL: 3 levels, 2 layers per block). */
export function sgmUnetTable(s: UnetStructure): PrefixTable {
  const t: PrefixTable = new Map(UNET_TOP);
  const k = s.layersPerBlock + 1; // input/output blocks per level
  for (let i = 0; i < s.levels; i++) {
    for (let j = 0; j < s.layersPerBlock; j++) {
      const n = 1 + i * k + j;
      addSubTable(t, `input_blocks.${n}.0`, `down_blocks.${i}.resnets.${j}`, UNET_RESNET);
      if (s.downAttention[i]) t.set(`input_blocks.${n}.1`, `down_blocks.${i}.attentions.${j}`);
    }
    if (i < s.levels - 1) t.set(`input_blocks.${(i + 1) * k}.0.op`, `down_blocks.${i}.downsamplers.0.conv`);
  }
  addSubTable(t, 'middle_block.0', 'mid_block.resnets.0', UNET_RESNET);
  t.set('middle_block.1', 'mid_block.attentions.0');
  addSubTable(t, 'middle_block.2', 'mid_block.resnets.1', UNET_RESNET);
  for (let i = 0; i < s.levels; i++) {
    for (let j = 0; j <= s.layersPerBlock; j++) {
      const n = i * k + j;
      addSubTable(t, `output_blocks.${n}.0`, `up_blocks.${i}.resnets.${j}`, UNET_RESNET);
      if (s.upAttention[i]) t.set(`output_blocks.${n}.1`, `up_blocks.${i}.attentions.${j}`);
    }
    if (i < s.levels - 1) t.set(`output_blocks.${i * k + s.layersPerBlock}.${s.upAttention[i] ? 2 : 1}.conv`, `up_blocks.${i}.upsamplers.0.conv`);
  }
  return t;
}

/** Number of indexed children `prefix.N.` among keys (max N + 1; 0 when none). */
export function countIndexed(keys: Iterable<string>, prefix: string): number {
  let max = -1;
  for (const key of keys) {
    if (!key.startsWith(prefix)) continue;
    const n = Number.parseInt(key.slice(prefix.length), 10);
    if (Number.isInteger(n) && n > max) max = n;
  }
  return max + 1;
}

function hasPrefix(keys: Iterable<string>, prefix: string): boolean {
  for (const key of keys) if (key.startsWith(prefix)) return true;
  return false;
}

/** Reads the UNet level structure off SGM keys (relative to `model.diffusion_model.`). */
export function sgmUnetStructure(keys: ReadonlySet<string>): UnetStructure {
  const inputBlocks = countIndexed(keys, 'input_blocks.');
  let firstDown = -1;
  for (let n = 1; n < inputBlocks && firstDown < 0; n++) if (keys.has(`input_blocks.${n}.0.op.weight`)) firstDown = n;
  const k = firstDown > 0 ? firstDown : inputBlocks; // blocks per level
  const levels = Math.max(1, Math.round(inputBlocks / k));
  const layersPerBlock = k - 1;
  const downAttention = Array.from({ length: levels }, (_, i) => hasPrefix(keys, `input_blocks.${1 + i * k}.1.`));
  const upAttention = Array.from({ length: levels }, (_, i) => keys.has(`output_blocks.${i * k}.1.norm.weight`));
  return { levels, layersPerBlock, downAttention, upAttention };
}

const VAE_RESNET: ReadonlyArray<readonly [string, string]> = [
  ['norm1', 'norm1'], ['conv1', 'conv1'], ['norm2', 'norm2'], ['conv2', 'conv2'], ['nin_shortcut', 'conv_shortcut'],
];
const VAE_MID_ATTN: ReadonlyArray<readonly [string, string]> = [
  ['norm', 'group_norm'], ['q', 'to_q'], ['k', 'to_k'], ['v', 'to_v'], ['proj_out', 'to_out.0'],
];
const VAE_TOP: ReadonlyArray<readonly [string, string]> = [
  ['quant_conv', 'quant_conv'], ['post_quant_conv', 'post_quant_conv'],
  ['encoder.conv_in', 'encoder.conv_in'], ['encoder.conv_out', 'encoder.conv_out'], ['encoder.norm_out', 'encoder.conv_norm_out'],
  ['decoder.conv_in', 'decoder.conv_in'], ['decoder.conv_out', 'decoder.conv_out'], ['decoder.norm_out', 'decoder.conv_norm_out'],
];

/** SGM VAE table. The decoder's `up.N` counts from the top (highest resolution) = diffusers `up_blocks.(levels-1-N)`. */
export function sgmVaeTable(levels: number, layersPerBlock: number): PrefixTable {
  const t: PrefixTable = new Map(VAE_TOP);
  for (const part of ['encoder', 'decoder']) {
    addSubTable(t, `${part}.mid.block_1`, `${part}.mid_block.resnets.0`, VAE_RESNET);
    addSubTable(t, `${part}.mid.block_2`, `${part}.mid_block.resnets.1`, VAE_RESNET);
    addSubTable(t, `${part}.mid.attn_1`, `${part}.mid_block.attentions.0`, VAE_MID_ATTN);
  }
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < layersPerBlock; j++) addSubTable(t, `encoder.down.${i}.block.${j}`, `encoder.down_blocks.${i}.resnets.${j}`, VAE_RESNET);
    if (i < levels - 1) t.set(`encoder.down.${i}.downsample.conv`, `encoder.down_blocks.${i}.downsamplers.0.conv`);
    const up = levels - 1 - i;
    for (let j = 0; j <= layersPerBlock; j++) addSubTable(t, `decoder.up.${i}.block.${j}`, `decoder.up_blocks.${up}.resnets.${j}`, VAE_RESNET);
    if (i > 0) t.set(`decoder.up.${i}.upsample.conv`, `decoder.up_blocks.${up}.upsamplers.0.conv`);
  }
  return t;
}

const OPENCLIP_LAYER: ReadonlyArray<readonly [string, string]> = [
  ['ln_1', 'layer_norm1'], ['ln_2', 'layer_norm2'], ['mlp.c_fc', 'mlp.fc1'], ['mlp.c_proj', 'mlp.fc2'], ['attn.out_proj', 'self_attn.out_proj'],
];
const OPENCLIP_TOP: ReadonlyArray<readonly [string, string]> = [
  ['ln_final', 'text_model.final_layer_norm'],
  ['token_embedding', 'text_model.embeddings.token_embedding'],
  ['positional_embedding', 'text_model.embeddings.position_embedding.weight'],
  ['text_projection.weight', 'text_projection.weight'], // some conversions store the Linear orientation
];

/** OpenCLIP (bigG) key map: `transformer.resblocks.N.*` → HF CLIP names, fused in_proj split in three. */
export function openClipKeyMap(layers: number): ComponentKeyMap {
  const table: PrefixTable = new Map(OPENCLIP_TOP);
  const special = new Map<string, SpecialKey>([['text_projection', { kind: 'transpose', target: 'text_projection.weight' }]]);
  for (let n = 0; n < layers; n++) {
    const from = `transformer.resblocks.${n}`;
    const to = `text_model.encoder.layers.${n}`;
    addSubTable(table, from, to, OPENCLIP_LAYER);
    for (const p of ['weight', 'bias']) {
      const targets = ['q', 'k', 'v'].map((x) => `${to}.self_attn.${x}_proj.${p}`) as [string, string, string];
      special.set(`${from}.attn.in_proj_${p}`, { kind: 'split3', targets });
    }
  }
  return { table, special };
}

/** The key map of one component, its structure read off its own (relative) keys. */
export function singleFileKeyMap(component: ComponentName, keys: ReadonlySet<string>): ComponentKeyMap {
  switch (component) {
    case 'unet': return { table: sgmUnetTable(sgmUnetStructure(keys)), special: new Map() };
    case 'vae': return { table: sgmVaeTable(countIndexed(keys, 'encoder.down.'), countIndexed(keys, 'encoder.down.0.block.')), special: new Map() };
    case 'textEncoder1': return { table: new Map([['text_model', 'text_model']]), special: new Map() };
    case 'textEncoder2': return openClipKeyMap(countIndexed(keys, 'transformer.resblocks.'));
  }
}

export interface SingleFileComponents {
  weights: Record<ComponentName, Map<string, TensorRef>>;
  /** number of stored tensors found under each component prefix */
  counts: Record<ComponentName, number>;
  /** keys under a component prefix that no table maps (full key names) */
  unmapped: string[];
}

/** Maps every tensor of a single-file header to canonical TensorRefs per component. */
export function mapSingleFile(header: SafetensorsHeader): SingleFileComponents {
  const weights = { unet: new Map(), vae: new Map(), textEncoder1: new Map(), textEncoder2: new Map() } as Record<ComponentName, Map<string, TensorRef>>;
  const counts = { unet: 0, vae: 0, textEncoder1: 0, textEncoder2: 0 } as Record<ComponentName, number>;
  const unmapped: string[] = [];
  for (const { component, prefix } of SINGLE_FILE_PARTS) {
    const rel = new Set<string>();
    for (const key of header.tensors.keys()) if (key.startsWith(prefix) && !isIgnoredKey(key)) rel.add(key.slice(prefix.length));
    counts[component] = rel.size;
    if (rel.size === 0) continue;
    const map = singleFileKeyMap(component, rel);
    const out = weights[component];
    for (const key of rel) {
      const e = header.tensors.get(prefix + key)!;
      const base: TensorRef = { file: header.file, dtype: e.dtype, shape: e.shape, byteOffset: e.byteOffset, byteLength: e.byteLength };
      const special = map.special.get(key);
      if (special?.kind === 'split3' && e.shape.length >= 1 && e.shape[0] % 3 === 0) {
        const part = e.byteLength / 3;
        special.targets.forEach((target, i) => {
          out.set(target, { ...base, shape: [e.shape[0] / 3, ...e.shape.slice(1)], byteOffset: e.byteOffset + i * part, byteLength: part });
        });
        continue;
      }
      if (special?.kind === 'transpose' && e.shape.length === 2) {
        out.set(special.target, { ...base, shape: [e.shape[1], e.shape[0]], transposed: true });
        continue;
      }
      const target = mapByLongestPrefix(key, map.table);
      if (target === undefined) {
        unmapped.push(prefix + key);
        continue;
      }
      out.set(target, { ...base, shape: component === 'vae' ? canonicalVaeShape(target, e.shape) : [...e.shape] });
    }
  }
  return { weights, counts, unmapped };
}

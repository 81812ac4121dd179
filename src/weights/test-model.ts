/**
 * Deterministic random SDXL-architecture checkpoints, in the diffusers folder layout or as one
 * single-file (SGM names) checkpoint. Every tensor's values depend only on (seed, canonical name),
 * so both layouts hold the same weights, and the same seed writes the same bytes.
 * Init keeps activations finite: weights ~ N(0, 1/fan_in) (approximately), norm weights 1,
 * norm biases 0, other biases ±0.01, embeddings ~ N(0, 0.02²).
 * Tensors are generated lazily while the file is written, so 'full' (~10 GB fp32) streams.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeSafetensors, type WriteEntry } from './safetensors.ts';
import { DIFFUSERS_PARTS } from './layouts/diffusers.ts';
import { keyMapForConfig, singleFileEntries, type CanonicalTensor } from './layouts/single-file-write.ts';
import { FULL_CONFIGS, modelTensors, TINY_CONFIGS, type ModelConfigs, type TensorSpec } from './test-model-spec.ts';
import {
  clipConfigJson, clipTokenizerFiles, modelIndexJson, schedulerConfigJson, tokenizerJsons, unetConfigJson, vaeConfigJson,
} from './test-model-files.ts';
import type { ComponentName } from './types.ts';
import { vaeScaleFactor } from './vae-scale-factor.ts';

export interface MakeTestModelOptions {
  /** diffusers: the model folder to create. single-file: a `.safetensors` path, or a folder to put `atelier-<size>-sdxl.safetensors` in */
  outDir: string;
  layout: 'diffusers' | 'single-file';
  seed: number;
  dtype?: 'F32' | 'F16';
  size?: 'tiny' | 'full';
  /** architecture to write instead of `size`'s (e.g. a VAE with fewer levels, other head counts); `size` then only names the file */
  configs?: ModelConfigs;
}

export const TEST_MODEL_CONFIGS: Readonly<Record<'tiny' | 'full', ModelConfigs>> = { tiny: TINY_CONFIGS, full: FULL_CONFIGS };

const COMPONENTS: readonly ComponentName[] = ['unet', 'vae', 'textEncoder1', 'textEncoder2'];

/** 32-bit hash of (seed, name): FNV-1a over the name, seeded by both halves of the seed, murmur3 finaliser. */
export function tensorSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
  h = Math.imul(h ^ (Math.floor(seed / 2 ** 32) >>> 0), 0x01000193) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b) >>> 0; h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35) >>> 0; h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Fills `out` with approximately normal values of the given std: xorshift128 (Marsaglia 2003)
 * words, each giving the sum of its two 16-bit halves (a triangular variate, variance 1/6 after centring).
 */
export function fillApproxNormal(out: Float32Array, seed32: number, std: number): Float32Array {
  // splitmix32-style state init; xorshift128 needs a non-zero state
  let s = seed32 >>> 0;
  const next = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b); z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let x = next() | 1, y = next(), z = next(), w = next();
  const scale = (std * Math.sqrt(6)) / 65535;
  const n = out.length;
  for (let i = 0; i < n; i++) {
    const t = x ^ (x << 11);
    x = y; y = z; z = w;
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    out[i] = ((w & 0xffff) + (w >>> 16) - 65535) * scale;
  }
  return out;
}

/** Values of one canonical tensor (see the file comment for the init rule). */
export function tensorValues(seed: number, spec: TensorSpec): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const isBias = spec.name.endsWith('.bias');
  const isNorm = /(^|\.)(\w*norm\w*)\.(weight|bias)$/.test(spec.name);
  if (isNorm) return isBias ? out : out.fill(1);
  if (isBias) return fillApproxNormal(out, tensorSeed(seed, spec.name), 0.01);
  if (spec.name.includes('embeddings.')) return fillApproxNormal(out, tensorSeed(seed, spec.name), 0.02);
  const fanIn = spec.shape.slice(1).reduce((a, b) => a * b, 1);
  return fillApproxNormal(out, tensorSeed(seed, spec.name), 1 / Math.sqrt(fanIn));
}

function canonical(seed: number, specs: TensorSpec[]): CanonicalTensor[] {
  return specs.map((s) => ({ name: s.name, shape: s.shape, values: () => tensorValues(seed, s) }));
}

const POSITION_IDS = 'text_model.embeddings.position_ids';

function positionIds(n: number): WriteEntry['data'] {
  return () => BigInt64Array.from({ length: n }, (_, i) => BigInt(i));
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}

async function writeDiffusers(root: string, seed: number, dtype: 'F32' | 'F16', cfg: ModelConfigs, size: 'tiny' | 'full'): Promise<void> {
  const tensors = modelTensors(cfg);
  const latent = size === 'full' ? 128 : 8;
  await writeJson(path.join(root, 'scheduler', 'scheduler_config.json'), schedulerConfigJson());
  await writeJson(path.join(root, 'unet', 'config.json'), unetConfigJson(cfg.unet, latent));
  await writeJson(path.join(root, 'vae', 'config.json'), vaeConfigJson(cfg.vae, latent * vaeScaleFactor(cfg.vae)));
  await writeJson(path.join(root, 'text_encoder', 'config.json'), clipConfigJson(cfg.textEncoder1, false));
  await writeJson(path.join(root, 'text_encoder_2', 'config.json'), clipConfigJson(cfg.textEncoder2, true));
  const tok = await clipTokenizerFiles();
  for (const [folder, pad] of [['tokenizer', '<|endoftext|>'], ['tokenizer_2', '!']] as const) {
    const { tokenizerConfig, specialTokensMap } = tokenizerJsons(pad);
    await writeJson(path.join(root, folder, 'tokenizer_config.json'), tokenizerConfig);
    await writeJson(path.join(root, folder, 'special_tokens_map.json'), specialTokensMap);
    await writeFile(path.join(root, folder, 'vocab.json'), tok.vocabJson);
    await writeFile(path.join(root, folder, 'merges.txt'), tok.mergesTxt);
  }
  for (const part of DIFFUSERS_PARTS) {
    const entries: WriteEntry[] = canonical(seed, tensors[part.component]).map((t) => ({ name: t.name, dtype, shape: t.shape, data: t.values }));
    if (part.component === 'textEncoder1' || part.component === 'textEncoder2') {
      const n = cfg[part.component].maxPositions;
      entries.push({ name: POSITION_IDS, dtype: 'I64', shape: [1, n], data: positionIds(n) });
    }
    await writeSafetensors(path.join(root, part.folder, `${part.base}.safetensors`), entries, { format: 'pt' });
  }
  // last, so that a folder with model_index.json is a complete model even if a run was interrupted
  await writeJson(path.join(root, 'model_index.json'), modelIndexJson());
}

async function writeSingleFile(file: string, seed: number, dtype: 'F32' | 'F16', cfg: ModelConfigs, size: 'tiny' | 'full'): Promise<void> {
  const tensors = modelTensors(cfg);
  const entries: WriteEntry[] = [];
  for (const c of COMPONENTS) entries.push(...singleFileEntries(c, canonical(seed, tensors[c]), keyMapForConfig(c, cfg), dtype));
  const n = cfg.textEncoder1.maxPositions;
  entries.push({ name: `conditioner.embedders.0.transformer.${POSITION_IDS}`, dtype: 'I64', shape: [1, n], data: positionIds(n) });
  await writeSafetensors(file, entries, { format: 'pt', atelier_test_model: JSON.stringify({ seed, size, dtype }) });
}

/** Writes a deterministic random SDXL model; returns its path (folder or file). */
export async function makeTestModel(opts: MakeTestModelOptions): Promise<string> {
  const size = opts.size ?? 'tiny';
  const dtype = opts.dtype ?? 'F32';
  const cfg = opts.configs ?? TEST_MODEL_CONFIGS[size];
  if (opts.layout === 'diffusers') {
    const root = path.resolve(opts.outDir);
    await mkdir(root, { recursive: true });
    await writeDiffusers(root, opts.seed, dtype, cfg, size);
    return root;
  }
  const out = path.resolve(opts.outDir);
  const file = out.toLowerCase().endsWith('.safetensors') ? out : path.join(out, `atelier-${size}-sdxl.safetensors`);
  await mkdir(path.dirname(file), { recursive: true });
  await writeSingleFile(file, opts.seed, dtype, cfg, size);
  return file;
}

/**
 * The diffusers folder layout: `model_index.json`, one sub-folder per component holding
 * `config.json` and safetensors weights (optionally a `.fp16` variant or index-sharded).
 * Canonical names are the names inside these files, with two normalisations: old VAE attention
 * names (`query`/`key`/`value`/`proj_attn`) become `to_q`/`to_k`/`to_v`/`to_out.0`, and
 * [C,C,1,1] VAE attention weights become [C,C]. Buffers such as `position_ids` are dropped.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { AtelierError } from '../../contract/errors.ts';
import { readSafetensorsHeader } from '../safetensors.ts';
import type { ComponentName, TensorRef, TokenizerFiles } from '../types.ts';
import { canonicalVaeShape, isIgnoredKey, mapByLongestPrefix, type PrefixTable } from './key-map.ts';

export interface DiffusersPart {
  component: ComponentName;
  folder: string;
  /** weight file base name (diffusers models vs transformers models) */
  base: string;
  label: string;
}

export const DIFFUSERS_PARTS: readonly DiffusersPart[] = [
  { component: 'unet', folder: 'unet', base: 'diffusion_pytorch_model', label: 'UNet (unet/)' },
  { component: 'vae', folder: 'vae', base: 'diffusion_pytorch_model', label: 'VAE (vae/)' },
  { component: 'textEncoder1', folder: 'text_encoder', base: 'model', label: 'text encoder 1 (text_encoder/)' },
  { component: 'textEncoder2', folder: 'text_encoder_2', base: 'model', label: 'text encoder 2 (text_encoder_2/)' },
];

export const DIFFUSERS_TOKENIZER_FOLDERS = { tokenizer1: 'tokenizer', tokenizer2: 'tokenizer_2' } as const;

/** Weight file names tried in order (fp32 first: it needs no conversion). `{b}` = base name. */
const WEIGHT_FILE_PATTERNS = ['{b}.safetensors', '{b}.safetensors.index.json', '{b}.fp16.safetensors', '{b}.fp16.safetensors.index.json'];
/** Pickle weight names: refused (unpickling runs arbitrary code). */
const PICKLE_FILE_PATTERNS = ['{b}.bin', '{b}.fp16.bin', 'pytorch_model.bin', 'pytorch_model.fp16.bin', '{b}.ckpt'];

/** Old diffusers VAE attention names → current ones (relative to `…mid_block.attentions.0`). */
const LEGACY_VAE_ATTENTION: ReadonlyArray<readonly [string, string]> = [
  ['query', 'to_q'], ['key', 'to_k'], ['value', 'to_v'], ['proj_attn', 'to_out.0'],
];
const LEGACY_VAE_TABLE: PrefixTable = new Map(
  ['encoder', 'decoder'].flatMap((p) => LEGACY_VAE_ATTENTION.map(([a, b]) => [`${p}.mid_block.attentions.0.${a}`, `${p}.mid_block.attentions.0.${b}`] as [string, string])),
);

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

/** Absolute paths of a component's safetensors weight files (one, or the shards of an index). */
export async function componentWeightFiles(root: string, part: DiffusersPart): Promise<string[]> {
  const dir = path.join(root, part.folder);
  for (const pattern of WEIGHT_FILE_PATTERNS) {
    const file = path.join(dir, pattern.replace('{b}', part.base));
    if (!(await exists(file))) continue;
    if (!file.endsWith('.index.json')) return [file];
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(await readFile(file, 'utf8'));
    } catch (e) {
      throw new AtelierError('CHECKPOINT_INVALID', `${file}: not a valid JSON shard index`, { cause: e });
    }
    const shards = [...new Set(Object.values(index.weight_map ?? {}))].sort();
    if (shards.length === 0 || shards.some((s) => s.includes('/') || s.includes('\\') || !s.endsWith('.safetensors'))) {
      throw new AtelierError('CHECKPOINT_INVALID', `${file}: weight_map must name .safetensors shards in the same folder`);
    }
    return shards.map((s) => path.join(dir, s));
  }
  for (const pattern of PICKLE_FILE_PATTERNS) {
    const file = path.join(dir, pattern.replace('{b}', part.base));
    if (await exists(file)) {
      throw new AtelierError('CHECKPOINT_INVALID', `${file}: pickle weights are refused (loading a pickle runs arbitrary code); convert them to .safetensors`);
    }
  }
  const listing = await readdir(dir).catch(() => null);
  const found = listing === null ? 'the folder is missing' : `the folder holds ${JSON.stringify(listing.slice(0, 8))}`;
  throw new AtelierError('CHECKPOINT_INVALID', `${root}: no ${part.label} weights (${part.folder}/${part.base}.safetensors); ${found}`);
}

/** The canonical name of a stored diffusers key (undefined: a buffer to ignore). */
export function canonicalDiffusersName(component: ComponentName, key: string): string | undefined {
  if (isIgnoredKey(key)) return undefined;
  if (component === 'vae') return mapByLongestPrefix(key, LEGACY_VAE_TABLE) ?? key;
  return key;
}

export interface DiffusersComponent {
  weights: Map<string, TensorRef>;
  files: string[];
  /** the component's config.json, null when absent */
  config: Record<string, unknown> | null;
}

export async function readJsonIfPresent(file: string): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const v = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? v : null;
  } catch (e) {
    throw new AtelierError('CHECKPOINT_INVALID', `${file}: not valid JSON`, { cause: e });
  }
}

/** Reads one component of a diffusers folder: canonical TensorRefs (headers only) and its config. */
export async function readDiffusersComponent(root: string, part: DiffusersPart): Promise<DiffusersComponent> {
  const files = await componentWeightFiles(root, part);
  const weights = new Map<string, TensorRef>();
  for (const file of files) {
    const header = await readSafetensorsHeader(file);
    for (const [key, e] of header.tensors) {
      const name = canonicalDiffusersName(part.component, key);
      if (name === undefined) continue;
      if (weights.has(name)) throw new AtelierError('CHECKPOINT_INVALID', `${file}: tensor "${key}" appears twice in ${part.folder}/`);
      const shape = part.component === 'vae' ? canonicalVaeShape(name, e.shape) : [...e.shape];
      weights.set(name, { file, dtype: e.dtype, shape, byteOffset: e.byteOffset, byteLength: e.byteLength });
    }
  }
  const config = await readJsonIfPresent(path.join(root, part.folder, 'config.json'));
  return { weights, files, config };
}

/** Tokenizer files of a diffusers folder, null unless both tokenizers have vocab.json + merges.txt. */
export async function diffusersTokenizers(root: string): Promise<{ tokenizer1: TokenizerFiles; tokenizer2: TokenizerFiles } | null> {
  const out: Partial<Record<'tokenizer1' | 'tokenizer2', TokenizerFiles>> = {};
  for (const [key, folder] of Object.entries(DIFFUSERS_TOKENIZER_FOLDERS) as [keyof typeof DIFFUSERS_TOKENIZER_FOLDERS, string][]) {
    const vocabJson = path.join(root, folder, 'vocab.json');
    const mergesTxt = path.join(root, folder, 'merges.txt');
    if (!(await exists(vocabJson)) || !(await exists(mergesTxt))) return null;
    out[key] = { vocabJson, mergesTxt };
  }
  return out as { tokenizer1: TokenizerFiles; tokenizer2: TokenizerFiles };
}

/** Pad token strings from tokenizer_config.json / special_tokens_map.json (SDXL defaults when absent). */
export async function diffusersPadTokens(root: string): Promise<{ tokenizer1: string; tokenizer2: string }> {
  const defaults = { tokenizer1: '<|endoftext|>', tokenizer2: '!' };
  const out = { ...defaults };
  for (const [key, folder] of Object.entries(DIFFUSERS_TOKENIZER_FOLDERS) as [keyof typeof DIFFUSERS_TOKENIZER_FOLDERS, string][]) {
    for (const name of ['tokenizer_config.json', 'special_tokens_map.json']) {
      const json = await readJsonIfPresent(path.join(root, folder, name));
      const pad = json?.pad_token;
      const text = typeof pad === 'string' ? pad : pad && typeof pad === 'object' ? (pad as { content?: unknown }).content : undefined;
      if (typeof text === 'string') {
        out[key] = text;
        break;
      }
    }
  }
  return out;
}

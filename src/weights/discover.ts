/**
 * Finds checkpoints, LoRAs and embeddings in a models folder laid out like AUTOMATIC1111
 * (`models/Stable-diffusion`, `models/Lora`, `embeddings`), ComfyUI (`models/checkpoints`,
 * `models/loras`, `models/embeddings`) or flat (files classified by their header keys).
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { readSafetensorsHeader } from './safetensors.ts';

export type ModelKind = 'checkpoints' | 'loras' | 'embeddings';

export interface ModelEntry {
  /** path relative to its category folder, without `.safetensors` (sub-folders kept: `sdxl/juggernaut`) */
  name: string;
  path: string;
  /** checkpoints only */
  layout?: 'single-file' | 'diffusers';
}

export type DiscoveredModels = Record<ModelKind, ModelEntry[]>;

/** Category folder names (A1111, ComfyUI, and common extras), relative to the folder or its `models/`. */
export const CATEGORY_FOLDERS: Readonly<Record<ModelKind, readonly string[]>> = {
  checkpoints: ['Stable-diffusion', 'checkpoints', 'diffusers'],
  loras: ['Lora', 'loras', 'LyCORIS'],
  embeddings: ['embeddings', 'textual_inversion'],
};

/** Header keys that classify a loose .safetensors file (first match wins). */
const KEY_SIGNATURES: ReadonlyArray<{ kind: ModelKind; test: (key: string) => boolean }> = [
  { kind: 'checkpoints', test: (k) => k.startsWith('model.diffusion_model.') },
  { kind: 'loras', test: (k) => k.startsWith('lora_') || k.includes('.lora_down.') || k.includes('.lora_A.') || k.includes('.lora.down.') },
  { kind: 'embeddings', test: (k) => k === 'clip_l' || k === 'clip_g' || k === 'emb_params' || k.startsWith('string_to_param') },
];

const MAX_DEPTH = 4;

async function isDir(p: string): Promise<boolean> {
  return stat(p).then((s) => s.isDirectory(), () => false);
}

async function isFile(p: string): Promise<boolean> {
  return stat(p).then((s) => s.isFile(), () => false);
}

async function list(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
}

const stripExt = (rel: string): string => rel.replace(/\.safetensors$/i, '').split(path.sep).join('/');

/** Walks a category folder: `.safetensors` files, and diffusers folders (model_index.json) as checkpoints. */
async function walk(dir: string, kind: ModelKind, base: string, depth: number, out: DiscoveredModels): Promise<void> {
  for (const name of await list(dir)) {
    const p = path.join(dir, name);
    if (await isDir(p)) {
      if (kind === 'checkpoints' && (await isFile(path.join(p, 'model_index.json')))) {
        out.checkpoints.push({ name: stripExt(path.relative(base, p)), path: p, layout: 'diffusers' });
      } else if (depth < MAX_DEPTH) {
        await walk(p, kind, base, depth + 1, out);
      }
    } else if (name.toLowerCase().endsWith('.safetensors')) {
      out[kind].push({ name: stripExt(path.relative(base, p)), path: p, ...(kind === 'checkpoints' ? { layout: 'single-file' as const } : {}) });
    }
  }
}

/** The kind of a loose file by its header keys; undefined when unreadable or unrecognised. */
async function classify(file: string): Promise<ModelKind | undefined> {
  try {
    const keys = [...(await readSafetensorsHeader(file)).tensors.keys()];
    return KEY_SIGNATURES.find((s) => keys.some(s.test))?.kind;
  } catch {
    return undefined;
  }
}

/** Lists the models under `dir` (see the file comment for the layouts understood). */
export async function discoverModels(dir: string): Promise<DiscoveredModels> {
  const root = path.resolve(dir);
  const out: DiscoveredModels = { checkpoints: [], loras: [], embeddings: [] };
  const claimed = new Set<string>();
  for (const base of [root, path.join(root, 'models')]) {
    for (const [kind, names] of Object.entries(CATEGORY_FOLDERS) as [ModelKind, readonly string[]][]) {
      for (const name of names) {
        const folder = path.join(base, name);
        if (claimed.has(folder) || !(await isDir(folder))) continue;
        claimed.add(folder);
        await walk(folder, kind, folder, 0, out);
      }
    }
  }
  // flat: loose files and diffusers folders directly in the folder
  for (const name of await list(root)) {
    const p = path.join(root, name);
    if (claimed.has(p)) continue;
    if (await isDir(p)) {
      if (await isFile(path.join(p, 'model_index.json'))) out.checkpoints.push({ name, path: p, layout: 'diffusers' });
    } else if (name.toLowerCase().endsWith('.safetensors')) {
      const kind = await classify(p);
      if (kind) out[kind].push({ name: stripExt(name), path: p, ...(kind === 'checkpoints' ? { layout: 'single-file' as const } : {}) });
    }
  }
  for (const k of Object.keys(out) as ModelKind[]) out[k].sort((a, b) => a.name.localeCompare(b.name));
  return out;
}

/**
 * loadModel: any SDXL checkpoint (diffusers folder or single file) → one SdxlModel of canonical
 * TensorRefs, configs read off shapes, and converted copies of components where `weights` asks for them.
 * Reads only safetensors headers (and writes the conversion cache once when needed).
 */
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import { clipConfigFromShapes, unetConfigFromShapes, vaeConfigFromShapes } from './config-from-shapes.ts';
import { checkSingleFile, COMPONENT_LABELS, detectSource, missingTensors } from './detect.ts';
import { conversionFor, ensureFp32Component } from './fp32-cache.ts';
import { sourceFingerprint } from './derived-cache.ts';
import { DIFFUSERS_PARTS, diffusersPadTokens, diffusersTokenizers, readDiffusersComponent } from './layouts/diffusers.ts';
import { mapSingleFile } from './layouts/single-file.ts';
import { readSafetensorsHeader } from './safetensors.ts';
import { readConfigFolder } from './config-folder.ts';
import { refuseUnknownWidths } from './standard-widths.ts';
import type { ComponentName, SdxlModel, TensorRef, WeightPrecision } from './types.ts';

export const COMPONENTS: readonly ComponentName[] = ['unet', 'vae', 'textEncoder1', 'textEncoder2'];

export interface LoadModelOptions {
  /** folder for converted copies of components */
  cacheDir: string;
  /** how UNet and text-encoder weights are held (default 'fp32') */
  weights?: WeightPrecision;
  /**
   * a diffusers config folder for a single-file checkpoint (as diffusers' `from_single_file(config=...)`): its
   * component config.json files (and tokenizers, when present) replace the shape rules; required when the file's
   * widths are not SDXL's (see standard-widths.ts)
   */
  config?: string;
}

type Weights = Record<ComponentName, Map<string, TensorRef>>;
type Configs = Partial<Record<ComponentName, Record<string, unknown> | null>>;

interface Loaded {
  weights: Weights;
  jsonConfigs: Configs;
  files: string[];
  roots: Record<ComponentName, string>;
  tokenizers: SdxlModel['tokenizers'];
  padTokens: { tokenizer1: string; tokenizer2: string };
}

async function loadDiffusers(root: string): Promise<Loaded> {
  const weights = {} as Weights;
  const jsonConfigs: Configs = {};
  const files: string[] = [];
  const problems: string[] = [];
  for (const part of DIFFUSERS_PARTS) {
    try {
      const c = await readDiffusersComponent(root, part);
      weights[part.component] = c.weights;
      jsonConfigs[part.component] = c.config;
      files.push(...c.files);
      const lack = missingTensors(part.component, c.weights);
      if (lack.length > 0) problems.push(`${part.label} lacks ${lack.map((x) => `"${x}"`).join(', ')}`);
    } catch (e) {
      if (e instanceof AtelierError && e.code === 'CHECKPOINT_INVALID') problems.push(e.message);
      else throw e;
    }
  }
  if (problems.length > 0) {
    const found = DIFFUSERS_PARTS.filter((p) => weights[p.component]).map((p) => `${weights[p.component].size} ${COMPONENT_LABELS[p.component]} tensors`);
    throw new AtelierError('CHECKPOINT_INVALID', `"${root}" is not a complete SDXL diffusers folder: found ${found.join(', ') || 'no component weights'}; ${problems.join('; ')}`);
  }
  const roots = Object.fromEntries(COMPONENTS.map((c) => [c, root])) as Record<ComponentName, string>;
  return { weights, jsonConfigs, files, roots, tokenizers: await diffusersTokenizers(root), padTokens: await diffusersPadTokens(root) };
}

async function loadSingleFile(file: string): Promise<Loaded> {
  const header = await readSafetensorsHeader(file);
  const mapped = mapSingleFile(header);
  checkSingleFile(file, [...header.tensors.keys()], mapped);
  const dir = path.dirname(file);
  return {
    weights: mapped.weights,
    jsonConfigs: {},
    files: [file],
    roots: Object.fromEntries(COMPONENTS.map((c) => [c, dir])) as Record<ComponentName, string>,
    tokenizers: null,
    padTokens: { tokenizer1: '<|endoftext|>', tokenizer2: '!' },
  };
}

/** Loads an SDXL checkpoint: a diffusers folder or a single `.safetensors` file. */
export async function loadModel(source: string, opts: LoadModelOptions): Promise<SdxlModel> {
  const kind = await detectSource(source);
  const abs = kind.layout === 'diffusers' ? kind.root : kind.file;
  const loaded = kind.layout === 'diffusers' ? await loadDiffusers(kind.root) : await loadSingleFile(kind.file);
  if (opts.config !== undefined) {
    if (kind.layout === 'diffusers') {
      throw new AtelierError('INVALID_INPUT', `"${abs}" is a diffusers folder with its own config.json files; a config folder is only for a single-file checkpoint`, { field: 'config' });
    }
    const folder = await readConfigFolder(opts.config);
    loaded.jsonConfigs = folder.configs;
    loaded.files.push(...folder.files);
    if (folder.tokenizers) loaded.tokenizers = folder.tokenizers;
    loaded.padTokens = folder.padTokens;
  }
  const fingerprint = await sourceFingerprint(abs, loaded.files);
  for (const component of COMPONENTS) {
    const dtype = conversionFor(component, loaded.weights[component], opts.weights ?? 'fp32');
    if (!dtype) continue;
    const fp32 = await ensureFp32Component(loaded.weights[component], { cacheDir: opts.cacheDir, fingerprint, component, source: abs, dtype });
    loaded.weights[component] = fp32.weights;
    loaded.roots[component] = fp32.root;
  }
  const w = loaded.weights;
  const cfg = loaded.jsonConfigs;
  const textEncoder2 = clipConfigFromShapes(w.textEncoder2, { config: cfg.textEncoder2, which: 2 });
  const config: SdxlModel['config'] = {
    unet: unetConfigFromShapes(w.unet, { config: cfg.unet, pooledDim: textEncoder2.projectionDim }),
    vae: vaeConfigFromShapes(w.vae, { config: cfg.vae }),
    textEncoder1: clipConfigFromShapes(w.textEncoder1, { config: cfg.textEncoder1, which: 1 }),
    textEncoder2,
  };
  const hasJson = Object.fromEntries(COMPONENTS.map((c) => [c, !!cfg[c]])) as Record<ComponentName, boolean>;
  refuseUnknownWidths(abs, config, hasJson);
  return {
    name: path.basename(abs).replace(/\.safetensors$/i, ''),
    source,
    layout: kind.layout,
    fingerprint,
    weights: w,
    config,
    tokenizers: loaded.tokenizers,
    componentRoots: loaded.roots,
    padTokens: loaded.padTokens,
  };
}

/** The deepest folder holding every file of `files`. */
function commonFolder(files: string[]): string {
  let dir = path.dirname(files[0]);
  for (const f of files) while (!f.startsWith(dir + path.sep) && dir !== path.dirname(dir)) dir = path.dirname(dir);
  return dir;
}

/**
 * The folder under which all tensor files of one component live (external-data initializers
 * must be relative paths inside one folder). Every `ref.file` of the component is inside it.
 */
export function componentRoot(model: SdxlModel, component: ComponentName): string {
  const root = model.componentRoots?.[component];
  if (root) return root;
  const files = [...new Set([...model.weights[component].values()].map((t) => t.file))];
  if (files.length === 0) throw new AtelierError('INTERNAL', `model "${model.name}" has no ${component} tensors`);
  return commonFolder(files);
}

/**
 * What a path holds: a diffusers folder or a single-file SDXL checkpoint, told apart by
 * sentinel files and keys (tables below); anything else is refused with what was found.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import { SINGLE_FILE_PARTS, type SingleFileComponents } from './layouts/single-file.ts';
import type { ComponentName, TensorRef } from './types.ts';

/** Extensions of pickle files: never opened (unpickling runs arbitrary code). */
export const PICKLE_EXTENSIONS: readonly string[] = ['.ckpt', '.pt', '.pth', '.bin', '.pkl', '.pickle'];

/** Files/folders whose presence makes a directory a diffusers model. */
export const DIFFUSERS_SENTINELS: readonly string[] = ['model_index.json', 'unet'];

/** Key signatures of files that are not SDXL checkpoints, to say what a refused file looks like. */
export const FOREIGN_SIGNATURES: ReadonlyArray<{ match: 'prefix' | 'contains' | 'exact'; text: string; what: string }> = [
  { match: 'prefix', text: 'cond_stage_model.', what: 'an SD 1.x/2.x checkpoint (cond_stage_model.*)' },
  { match: 'prefix', text: 'conditioner.embedders.0.model.', what: 'an SDXL refiner checkpoint (OpenCLIP only, conditioner.embedders.0.model.*)' },
  { match: 'prefix', text: 'lora_unet_', what: 'a LoRA (lora_unet_*)' },
  { match: 'prefix', text: 'lora_te', what: 'a LoRA (lora_te*)' },
  { match: 'contains', text: '.lora_down.', what: 'a LoRA (*.lora_down.*)' },
  { match: 'contains', text: '.lora_A.', what: 'a LoRA (PEFT *.lora_A.*)' },
  { match: 'contains', text: '.lora.down.', what: 'a LoRA (*.lora.down.*)' },
  { match: 'exact', text: 'clip_g', what: 'an SDXL textual-inversion embedding (clip_l/clip_g)' },
  { match: 'exact', text: 'emb_params', what: 'a textual-inversion embedding (emb_params)' },
  { match: 'prefix', text: 'string_to_param', what: 'a textual-inversion embedding (string_to_param)' },
  { match: 'prefix', text: 'control_model.', what: 'a ControlNet' },
  { match: 'prefix', text: 'double_blocks.', what: 'a Flux model' },
  { match: 'prefix', text: 'model.diffusion_model.joint_blocks.', what: 'an SD3 model' },
  { match: 'prefix', text: 'encoder.down.', what: 'a standalone VAE' },
  { match: 'prefix', text: 'encoder.down_blocks.', what: 'a standalone VAE in diffusers naming' },
  { match: 'prefix', text: 'down_blocks.', what: 'a bare diffusers UNet file (load its whole diffusers folder instead)' },
  { match: 'prefix', text: 'text_model.', what: 'a bare CLIP text encoder' },
];

/** Tensors every SDXL component must have (canonical names); the UNet's add_embedding marks SDXL. */
export const REQUIRED_TENSORS: Readonly<Record<ComponentName, readonly string[]>> = {
  unet: ['conv_in.weight', 'time_embedding.linear_1.weight', 'add_embedding.linear_1.weight', 'conv_out.weight', 'mid_block.resnets.0.conv1.weight'],
  vae: ['encoder.conv_in.weight', 'decoder.conv_in.weight', 'quant_conv.weight', 'post_quant_conv.weight', 'decoder.conv_out.weight'],
  textEncoder1: ['text_model.embeddings.token_embedding.weight', 'text_model.embeddings.position_embedding.weight', 'text_model.final_layer_norm.weight'],
  textEncoder2: ['text_model.embeddings.token_embedding.weight', 'text_model.embeddings.position_embedding.weight', 'text_model.final_layer_norm.weight', 'text_projection.weight'],
};

export const COMPONENT_LABELS: Readonly<Record<ComponentName, string>> = {
  unet: 'UNet', vae: 'VAE', textEncoder1: 'text encoder 1 (CLIP-L)', textEncoder2: 'text encoder 2 (OpenCLIP bigG)',
};

export type SourceKind = { layout: 'diffusers'; root: string } | { layout: 'single-file'; file: string };

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

/** Folder → diffusers (by sentinel), `.safetensors` file → single file; pickles are refused. */
export async function detectSource(source: string): Promise<SourceKind> {
  const abs = path.resolve(source);
  const s = await stat(abs).catch((e: unknown) => {
    throw new AtelierError('CHECKPOINT_INVALID', `model path "${source}" does not exist or cannot be read`, { cause: e });
  });
  if (s.isDirectory()) {
    for (const sentinel of DIFFUSERS_SENTINELS) if (await exists(path.join(abs, sentinel))) return { layout: 'diffusers', root: abs };
    throw new AtelierError('CHECKPOINT_INVALID', `folder "${source}" is not a diffusers model: it has neither ${DIFFUSERS_SENTINELS.join(' nor ')}`);
  }
  const ext = path.extname(abs).toLowerCase();
  if (PICKLE_EXTENSIONS.includes(ext)) {
    throw new AtelierError('CHECKPOINT_INVALID', `"${source}" is a pickle (${ext}) file: refused, because loading a pickle runs arbitrary code; use a .safetensors version of the model`);
  }
  if (ext !== '.safetensors') {
    throw new AtelierError('CHECKPOINT_INVALID', `"${source}" is not a .safetensors file or a diffusers folder (extension "${ext}")`);
  }
  return { layout: 'single-file', file: abs };
}

/** What a set of keys looks like, from FOREIGN_SIGNATURES (undefined: nothing recognised). */
export function recogniseForeign(keys: Iterable<string>): string | undefined {
  for (const key of keys) {
    for (const sig of FOREIGN_SIGNATURES) {
      const hit = sig.match === 'prefix' ? key.startsWith(sig.text) : sig.match === 'contains' ? key.includes(sig.text) : key === sig.text;
      if (hit) return sig.what;
    }
  }
  return undefined;
}

/** Missing required tensors of one component (canonical names). */
export function missingTensors(component: ComponentName, weights: ReadonlyMap<string, TensorRef>): string[] {
  return REQUIRED_TENSORS[component].filter((n) => !weights.has(n));
}

/** Throws CHECKPOINT_INVALID unless a single file holds all four SDXL components, fully mapped. */
export function checkSingleFile(file: string, keys: readonly string[], mapped: SingleFileComponents): void {
  const found: string[] = [];
  const missing: string[] = [];
  for (const { component, label } of SINGLE_FILE_PARTS) {
    const n = mapped.counts[component];
    if (n === 0) {
      missing.push(`no ${COMPONENT_LABELS[component]} (${label.slice(label.indexOf('(') + 1, -1)})`);
      continue;
    }
    found.push(`${n} ${COMPONENT_LABELS[component]} tensors`);
    const lack = missingTensors(component, mapped.weights[component]);
    if (lack.length > 0) missing.push(`${COMPONENT_LABELS[component]} lacks ${lack.map((x) => `"${x}"`).join(', ')}`);
  }
  if (mapped.unmapped.length > 0) {
    const shown = mapped.unmapped.slice(0, 5).map((k) => `"${k}"`).join(', ');
    missing.push(`${mapped.unmapped.length} tensors match no SDXL layout (${shown}${mapped.unmapped.length > 5 ? ', …' : ''})`);
  }
  if (missing.length === 0) return;
  const looks = found.length === 4 ? undefined : recogniseForeign(keys);
  const foundText = found.length > 0 ? `found ${found.join(', ')}` : `found ${keys.length} tensors but none of an SDXL checkpoint`;
  throw new AtelierError(
    'CHECKPOINT_INVALID',
    `"${file}" is not a complete SDXL checkpoint: ${foundText}; ${missing.join('; ')}${looks ? `. It looks like ${looks}` : ''}`,
  );
}

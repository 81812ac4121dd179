/** Builds a GenerateRequest from an oracle trace's json (tests and the parity tooling). */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { GenerateRequest, SamplerName, TimestepSpacing } from '../contract/types.ts';
import { decodeImage } from '../images/codec.ts';

export interface TraceParams {
  request: GenerateRequest;
  json: Record<string, unknown> & { tensors?: Record<string, unknown> };
}

export async function requestFromTrace(oracle: string, name: string): Promise<TraceParams> {
  const json = JSON.parse(await fs.readFile(path.join(oracle, `${name}.json`), 'utf8'));
  const sampler = (json.sampler?.name as string | undefined) ?? 'euler';
  const overrides = (json.sampler?.overrides ?? {}) as Record<string, unknown>;
  const named: Record<string, { sampler: SamplerName; spacing?: TimestepSpacing }> = {
    euler_trailing: { sampler: 'euler', spacing: 'trailing' },
  };
  const pick = named[sampler] ?? { sampler: sampler as SamplerName };
  const spacing = (overrides.timestep_spacing as TimestepSpacing | undefined) ?? pick.spacing ?? 'leading';
  const img2img = json.pipeline ? String(json.pipeline).includes('Img2Img') : json.strength !== undefined && json.strength !== null;
  let image: GenerateRequest['image'];
  if (img2img) {
    const bytes = await fs.readFile(path.join(oracle, 'inputs', 'init_64x64.png'));
    image = await decodeImage(bytes, { maxPixels: 1 << 24, field: 'image' });
  }
  const request: GenerateRequest = {
    task: img2img ? 'image-to-image' : 'text-to-image',
    prompt: json.prompt,
    negativePrompt: json.negative_prompt ?? null,
    image,
    strength: img2img ? json.strength : 1,
    width: json.width ?? 64,
    height: json.height ?? 64,
    numImages: 1,
    steps: json.num_inference_steps,
    guidanceScale: json.guidance_scale,
    guidanceRescale: json.guidance_rescale ?? 0,
    seed: json.seed,
    sampler: pick.sampler,
    timestepSpacing: spacing,
    loras: [],
    embeddings: [],
  };
  return { request, json };
}

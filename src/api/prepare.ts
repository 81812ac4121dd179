/**
 * Submit-time work: validate the wire input against the endpoint's table, fetch and decode the input image
 * (so a bad image is a 4xx on submit, never a failed job), plan the output size, resolve local adapters,
 * choose the seed, and produce the job the runner will execute. The decoded input is stored with the job
 * (PNG, already resized), so a restart never fetches it again.
 */
import type { Engine, GenerateRequest } from '../contract/types.ts';
import { AtelierError } from '../contract/errors.ts';
import type { AllowList } from '../images/address-guard.ts';
import { decodeImage, encodeImage } from '../images/codec.ts';
import { fetchBytes } from '../images/fetch.ts';
import { resizeRgb, resolveOutputSize, type OutputPlan } from '../images/sizes.ts';
import { resolveAdapterSource, type AdapterDirs } from '../jobs/adapter-sources.ts';
import type { JobInput } from '../jobs/queue.ts';
import type { EndpointDef } from './endpoints.ts';
import { inputFields, type WireInput } from './schemas.ts';
import { randomSeed } from '../contract/seed.ts';
import { checkInputs } from '../contract/check-inputs.ts';
import { mapFields, type DirectRequestKey } from '../contract/fields.ts';
import { validateObject, ValidationFailed } from '../contract/validate.ts';

export interface PrepareContext {
  engine: Engine;
  maxPixels: number;
  maxImageBytes: number;
  allow: AllowList;
  adapterDirs: AdapterDirs;
  httpRequestId?: string;
  signal?: AbortSignal;
}

/** Model names the engine serves, and the default one (the first, or the configured default). */
export function modelChoice(engine: Engine, configuredDefault?: string): { names: string[]; default?: string } {
  const names = engine.listModels().map((m) => m.name);
  const def = configuredDefault && names.includes(configuredDefault) ? configuredDefault : names[0];
  return { names, ...(def ? { default: def } : {}) };
}

/**
 * Validate against the endpoint's fields, then the rules that span fields: returns the input with defaults, or
 * throws ValidationFailed (422) — so that no request is accepted that the engine would refuse for an input reason.
 */
export function validateInput(endpoint: EndpointDef, body: unknown, engine: Engine, defaultModel?: string): WireInput {
  const models = modelChoice(engine, defaultModel);
  const { value, issues } = validateObject(body, inputFields(endpoint.task, models.names, models.default));
  if (issues.length === 0) issues.push(...checkInputs(value));
  if (issues.length > 0) throw new ValidationFailed(issues);
  return value as WireInput;
}

/** Input largest accepted: the output limit, but at least 40 MP so camera photos pass (they are resized down). */
export function maxInputPixels(maxPixels: number): number {
  return Math.max(maxPixels, 40_000_000);
}

export async function prepareJob(
  endpoint: EndpointDef,
  w: WireInput,
  ctx: PrepareContext,
): Promise<{ input: JobInput; inputImage?: Uint8Array }> {
  if (ctx.engine.listModels().length === 0) throw new AtelierError('NO_MODEL', 'no model is loaded on this server');

  // 1. Output size, and the input image resized to the generate size.
  let plan: OutputPlan;
  let inputImage: Uint8Array | undefined;
  if (endpoint.task === 'image-to-image') {
    const fetched = await fetchBytes(w.image_url!, {
      maxBytes: ctx.maxImageBytes,
      timeoutMs: 30_000,
      maxRedirects: 5,
      allow: ctx.allow,
      field: 'image_url',
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    const decoded = await decodeImage(fetched.bytes, { maxPixels: maxInputPixels(ctx.maxPixels), field: 'image_url' });
    plan = resolveOutputSize({
      imageSize: w.image_size,
      inputSize: { width: decoded.width, height: decoded.height },
      preserveAspectRatio: w.preserve_aspect_ratio ?? false,
      cropOutput: w.crop_output ?? false,
      maxPixels: ctx.maxPixels,
    });
    const resized = await resizeRgb(decoded, plan.generateWidth, plan.generateHeight, 'fill');
    inputImage = (await encodeImage(resized, 'png')).bytes;
  } else {
    plan = resolveOutputSize({ imageSize: w.image_size, preserveAspectRatio: false, cropOutput: false, maxPixels: ctx.maxPixels });
  }

  // 2. Adapters: URLs are fetched by the runner (cached); local names are resolved now.
  const loras = w.loras.map((l, i) => ({ ...resolveAdapterSource(l.path, ctx.adapterDirs, 'LoRA', `loras.${i}.path`), scale: l.scale }));
  const embeddings = w.embeddings.map((e, i) => ({
    ...resolveAdapterSource(e.path, ctx.adapterDirs, 'embedding', `embeddings.${i}.path`),
    tokens: e.tokens,
  }));

  const direct = mapFields(inputFields(endpoint.task, []), w);
  const fields = direct.request as Pick<GenerateRequest, DirectRequestKey>;
  const input: JobInput = {
    request: {
      task: endpoint.task,
      ...fields,
      strength: fields.strength ?? 1, // text-to-image has no strength: all steps run
      // "" and absent both mean "nothing to exclude": zero negative conditioning (SDXL's force_zeros_for_empty_prompt).
      negativePrompt: w.negative_prompt ? w.negative_prompt : null,
      width: plan.generateWidth,
      height: plan.generateHeight,
      seed: w.seed ?? randomSeed(),
    },
    loras,
    embeddings,
    output: {
      ...(direct.output as Required<typeof direct.output>),
      finalWidth: plan.finalWidth,
      finalHeight: plan.finalHeight,
      ...(plan.crop ? { crop: plan.crop } : {}),
    },
    ...(ctx.httpRequestId ? { httpRequestId: ctx.httpRequestId } : {}),
  };
  return { input, ...(inputImage ? { inputImage } : {}) };
}

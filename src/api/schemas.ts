/**
 * The one schema table per endpoint (ranges and defaults as /work/shared/API.md lists them).
 * Validation (validator.ts), unknown-field rejection, /openapi.json and /docs are all generated from these tables.
 */
import type { SamplerName, TimestepSpacing } from '../contract/types.ts';
import type { FieldSpec, FieldType } from './validator.ts';

export { IMAGE_SIZE_PRESETS, MAX_SEED, SAMPLERS, TIMESTEP_SPACINGS, type ImageSizePreset } from '../contract/tables.ts';
import { IMAGE_SIZE_PRESETS, MAX_SEED, SAMPLERS, TIMESTEP_SPACINGS, type ImageSizePreset } from '../contract/tables.ts';
export const MAX_LORAS = 16;
export const MAX_EMBEDDINGS = 16;

export type Task = 'text-to-image' | 'image-to-image';

/** Wire input after validation, defaults filled in. */
export interface WireInput {
  prompt: string;
  negative_prompt?: string;
  image_url?: string;
  strength?: number;
  image_size: ImageSizePreset | { width: number; height: number };
  num_images: number;
  num_inference_steps: number;
  guidance_scale: number;
  seed?: number;
  loras: { path: string; scale: number; force: boolean }[];
  embeddings: { path: string; tokens: string[] }[];
  preserve_aspect_ratio?: boolean;
  crop_output?: boolean;
  expand_prompt: boolean;
  format: 'jpeg' | 'png';
  enable_safety_checker: boolean;
  safety_checker_version: 'v1';
  sync_mode: boolean;
  model?: string;
  sampler: SamplerName;
  timestep_spacing: TimestepSpacing;
  guidance_rescale: number;
}

const side: FieldType = { kind: 'integer', min: 64, max: 14142 };

const IMAGE_SIZE: FieldType = {
  kind: 'oneOf',
  describe: `a preset (${Object.keys(IMAGE_SIZE_PRESETS).join(', ')}) or {"width", "height"} with sides 64 – 14142`,
  options: [
    { kind: 'string', enum: Object.keys(IMAGE_SIZE_PRESETS) },
    {
      kind: 'object',
      title: 'ImageSize',
      fields: [
        { name: 'width', type: side, required: true, description: 'width in pixels, snapped to a multiple of 8' },
        { name: 'height', type: side, required: true, description: 'height in pixels, snapped to a multiple of 8' },
      ],
    },
  ],
};

const LORA: FieldType = {
  kind: 'object',
  title: 'LoraWeight',
  fields: [
    {
      name: 'path',
      type: { kind: 'string', minLength: 1 },
      required: true,
      description: 'http(s) URL of a .safetensors LoRA, or a file name inside the server loras folder',
    },
    { name: 'scale', type: { kind: 'number', min: 0, max: 4 }, default: 1, description: 'how strongly the LoRA applies' },
    {
      name: 'force',
      type: { kind: 'boolean' },
      default: false,
      description: 'accepted for compatibility; has no effect (every LoRA given is always applied)',
    },
  ],
};

const EMBEDDING: FieldType = {
  kind: 'object',
  title: 'Embedding',
  fields: [
    {
      name: 'path',
      type: { kind: 'string', minLength: 1 },
      required: true,
      description: 'http(s) URL of a .safetensors embedding (clip_l + clip_g), or a file name inside the server embeddings folder',
    },
    {
      name: 'tokens',
      type: { kind: 'array', items: { kind: 'string', minLength: 1, maxLength: 64 }, maxItems: 75 },
      default: ['<s0>', '<s1>'],
      description: "tokens bound to the embedding's vectors, in order",
    },
  ],
};

function common(models: readonly string[], defaultModel: string | undefined): FieldSpec[] {
  return [
    { name: 'prompt', type: { kind: 'string', minLength: 1 }, required: true, description: 'what the output should show' },
    {
      name: 'negative_prompt',
      type: { kind: 'string' },
      default: '',
      description: 'what to exclude; when absent, the negative conditioning is zero (as diffusers does for SDXL)',
    },
    { name: 'image_size', type: IMAGE_SIZE, default: 'square_hd', description: 'output size; custom sides are snapped to a multiple of 8' },
    { name: 'num_inference_steps', type: { kind: 'integer', min: 1, max: 65 }, default: 25, description: 'denoising steps' },
    {
      name: 'guidance_scale',
      type: { kind: 'number', min: 0, max: 20 },
      default: 7.5,
      description: 'classifier-free guidance; ≤ 1 disables the unconditional pass',
    },
    {
      name: 'seed',
      type: { kind: 'integer', min: 0, max: MAX_SEED },
      description: 'same seed + same parameters + same model = identical pixels; random when absent, and returned',
    },
    { name: 'num_images', type: { kind: 'integer', min: 1, max: 8 }, default: 1, description: 'images per request' },
    { name: 'loras', type: { kind: 'array', items: LORA, maxItems: MAX_LORAS }, default: [], description: 'LoRA adapters, stacked' },
    {
      name: 'embeddings',
      type: { kind: 'array', items: EMBEDDING, maxItems: MAX_EMBEDDINGS },
      default: [],
      description: 'textual-inversion embeddings',
    },
    {
      name: 'expand_prompt',
      type: { kind: 'boolean' },
      default: false,
      description: 'not available yet: accepted, the prompt is used as given, and the response `prompt` says so exactly',
    },
    { name: 'format', type: { kind: 'string', enum: ['jpeg', 'png'] }, default: 'jpeg', description: 'output encoding' },
    {
      name: 'enable_safety_checker',
      type: { kind: 'boolean' },
      default: true,
      description: 'no checker is installed yet: `has_nsfw_concepts` entries are null (= not checked), never false',
    },
    { name: 'safety_checker_version', type: { kind: 'string', enum: ['v1'] }, default: 'v1', description: 'which checker' },
    {
      name: 'sync_mode',
      type: { kind: 'boolean' },
      default: false,
      description: 'return images as data URIs and keep no output files on the server',
    },
    {
      name: 'model',
      type: { kind: 'string', enum: models },
      ...(defaultModel ? { default: defaultModel } : {}),
      extension: true,
      description: 'which of the served models runs the request',
    },
    {
      name: 'sampler',
      type: { kind: 'string', enum: SAMPLERS },
      default: 'euler',
      extension: true,
      description: 'sampling method',
    },
    {
      name: 'timestep_spacing',
      type: { kind: 'string', enum: TIMESTEP_SPACINGS },
      default: 'leading',
      extension: true,
      description: 'how the steps are spread over the noise schedule',
    },
    {
      name: 'guidance_rescale',
      type: { kind: 'number', min: 0, max: 1 },
      default: 0,
      extension: true,
      description: 'rescales guided noise to fight over-exposure (Lin et al. 2023, arXiv:2305.08891); 0 = off',
    },
  ];
}

/** The image-to-image table: the text-to-image fields plus the input image and how it shapes the output. */
export function inputFields(task: Task, models: readonly string[], defaultModel?: string): FieldSpec[] {
  const base = common(models, defaultModel);
  if (task === 'text-to-image') return base;
  const extra: FieldSpec[] = [
    {
      name: 'image_url',
      type: { kind: 'string', minLength: 1, format: 'uri' },
      required: true,
      description: 'the input image: http(s) URL or data: URI; JPEG, PNG, WebP, GIF (first frame), AVIF',
    },
    {
      name: 'strength',
      type: { kind: 'number', min: 0.05, max: 1 },
      default: 0.95,
      description: 'how far the output departs from the input; 1.0 = full regeneration; at least one step always runs',
    },
    {
      name: 'preserve_aspect_ratio',
      type: { kind: 'boolean' },
      default: false,
      description: "output keeps the input's aspect ratio at about the requested pixel count",
    },
    {
      name: 'crop_output',
      type: { kind: 'boolean' },
      default: false,
      description: 'with preserve_aspect_ratio: crop to exactly the requested size',
    },
  ];
  return [base[0]!, extra[0]!, extra[1]!, ...base.slice(1, 3), ...extra.slice(2), ...base.slice(3)];
}

/** Output schema (for OpenAPI only; the server builds these objects itself). */
export const OUTPUT_SCHEMA = {
  type: 'object',
  required: ['images', 'seed', 'has_nsfw_concepts', 'prompt', 'timings'],
  properties: {
    images: {
      type: 'array',
      items: {
        type: 'object',
        required: ['url', 'width', 'height', 'content_type'],
        properties: {
          url: { type: 'string', description: 'stable URL under /outputs/, or a data: URI with sync_mode' },
          width: { type: 'integer' },
          height: { type: 'integer' },
          content_type: { type: 'string', enum: ['image/jpeg', 'image/png'] },
        },
      },
    },
    seed: { type: 'integer' },
    has_nsfw_concepts: {
      type: 'array',
      items: { type: ['boolean', 'null'] },
      description: 'null = not checked (no safety checker is installed yet)',
    },
    prompt: { type: 'string', description: 'the prompt actually encoded' },
    timings: { type: 'object', additionalProperties: { type: 'number' }, description: 'seconds per stage' },
  },
} as const;

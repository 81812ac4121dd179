/**
 * THE table of request fields. Every endpoint's JSON schema, the OpenAPI document, the CLI flags of
 * `atelier generate` and their `--help`, and the validation messages are derived from it (and later the
 * playground's form and the AUTOMATIC1111 mapping). To add a field: add an entry here, and use it in the pipeline.
 *
 * A field that maps one-to-one onto the engine's request (`to.request`) or the delivery options (`to.output`)
 * is copied by `mapFields`; the few that need work (the input image, the size, adapters, the seed, the negative
 * prompt) are turned into the request by the submit code.
 */
import type { Task } from './endpoints.ts';
import { IMAGE_SIZE_PRESET_NAMES, MAX_SEED, MAX_SIDE, MIN_SIDE, OUTPUT_FORMATS, SAMPLERS, TIMESTEP_SPACINGS } from './tables.ts';
import type { GenerateRequest, OutputOptions } from './types.ts';
import type { FieldSpec, FieldType } from './validate.ts';

export const MAX_LORAS = 16;
/**
 * Longest prompt (and negative prompt), in characters (UTF-16 code units, as JSON strings count them). 10,000
 * characters are at most a few thousand tokens, i.e. some tens of 75-token chunks: ample for any prompt people
 * write, and a bound on the tokenizer's and the text encoders' work per request.
 */
export const MAX_PROMPT_CHARS = 10_000;
export const MAX_EMBEDDINGS = 16;

/** Request keys a wire field may fill directly: all but the ones the submit code builds by hand. */
export type DirectRequestKey = Exclude<keyof GenerateRequest, 'task' | 'negativePrompt' | 'image' | 'width' | 'height' | 'seed' | 'loras' | 'embeddings' | 'preview'>;

export interface RequestField extends FieldSpec {
  /** the endpoints' tasks that take this field */
  tasks: readonly Task[];
  /** where the validated value goes when it maps one-to-one */
  to?: { request: DirectRequestKey & keyof GenerateRequest } | { output: keyof OutputOptions };
  /** the `atelier generate` flag (without `--`) that sets it; absent = not a CLI flag */
  cli?: string;
  /** shown up front in forms (the rest is folded) */
  common?: boolean;
  /** its allowed values are the served models, known only at run time */
  servedModels?: boolean;
}

const ALL: readonly Task[] = ['text-to-image', 'image-to-image'];
const IMAGE_INPUT: readonly Task[] = ['image-to-image'];

const side: FieldType = { kind: 'integer', min: MIN_SIDE, max: MAX_SIDE };

const IMAGE_SIZE: FieldType = {
  kind: 'oneOf',
  describe: `a preset (${IMAGE_SIZE_PRESET_NAMES.join(', ')}) or {"width", "height"} with sides ${MIN_SIDE} – ${MAX_SIDE}`,
  options: [
    { kind: 'string', enum: IMAGE_SIZE_PRESET_NAMES },
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

/** In order: the order of each endpoint's schema and form. */
export const REQUEST_FIELDS: readonly RequestField[] = Object.freeze([
  { name: 'prompt', tasks: ALL, type: { kind: 'string', minLength: 1, maxLength: MAX_PROMPT_CHARS }, required: true, description: 'what the output should show', to: { request: 'prompt' }, cli: 'prompt', common: true },
  {
    name: 'image_url',
    tasks: IMAGE_INPUT,
    type: { kind: 'string', minLength: 1, format: 'uri' },
    required: true,
    description: 'the input image: http(s) URL or data: URI; JPEG, PNG, WebP, GIF (first frame), AVIF',
    common: true,
  },
  {
    name: 'strength',
    tasks: IMAGE_INPUT,
    type: { kind: 'number', min: 0.05, max: 1 },
    default: 0.95,
    description: 'how far the output departs from the input; 1.0 = full regeneration; at least one step always runs',
    to: { request: 'strength' },
    cli: 'strength',
    common: true,
  },
  {
    name: 'negative_prompt',
    tasks: ALL,
    type: { kind: 'string', maxLength: MAX_PROMPT_CHARS },
    default: '',
    description: 'what to exclude; when absent, the negative conditioning is zero (as diffusers does for SDXL)',
    cli: 'negative-prompt',
    common: true,
  },
  { name: 'image_size', tasks: ALL, type: IMAGE_SIZE, default: 'square_hd', description: 'output size; custom sides are snapped to a multiple of 8', common: true },
  {
    name: 'preserve_aspect_ratio',
    tasks: IMAGE_INPUT,
    type: { kind: 'boolean' },
    default: false,
    description: "output keeps the input's aspect ratio at about the requested pixel count",
  },
  {
    name: 'crop_output',
    tasks: IMAGE_INPUT,
    type: { kind: 'boolean' },
    default: false,
    description: 'with preserve_aspect_ratio: crop to exactly the requested size',
  },
  {
    name: 'num_inference_steps',
    tasks: ALL,
    type: { kind: 'integer', min: 1, max: 65 },
    default: 25,
    description: 'denoising steps',
    to: { request: 'steps' },
    cli: 'steps',
    common: true,
  },
  {
    name: 'guidance_scale',
    tasks: ALL,
    type: { kind: 'number', min: 0, max: 20 },
    default: 7.5,
    description: 'classifier-free guidance; ≤ 1 disables the unconditional pass',
    to: { request: 'guidanceScale' },
    cli: 'guidance-scale',
    common: true,
  },
  {
    name: 'seed',
    tasks: ALL,
    type: { kind: 'integer', min: 0, max: MAX_SEED },
    description: 'same seed + same parameters + same model = identical pixels; random when absent, and returned',
    cli: 'seed',
    common: true,
  },
  {
    name: 'num_images',
    tasks: ALL,
    type: { kind: 'integer', min: 1, max: 8 },
    default: 1,
    description: 'images per request',
    to: { request: 'numImages' },
    cli: 'num-images',
    common: true,
  },
  { name: 'loras', tasks: ALL, type: { kind: 'array', items: LORA, maxItems: MAX_LORAS }, default: [], description: 'LoRA adapters, stacked' },
  {
    name: 'embeddings',
    tasks: ALL,
    type: { kind: 'array', items: EMBEDDING, maxItems: MAX_EMBEDDINGS },
    default: [],
    description: 'textual-inversion embeddings',
  },
  {
    name: 'expand_prompt',
    tasks: ALL,
    type: { kind: 'boolean' },
    default: false,
    description: 'not available yet: accepted, the prompt is used as given, and the response `prompt` says so exactly',
    to: { output: 'expandPrompt' },
  },
  { name: 'format', tasks: ALL, type: { kind: 'string', enum: OUTPUT_FORMATS }, default: 'jpeg', description: 'output encoding', to: { output: 'format' }, cli: 'format', common: true },
  {
    name: 'enable_safety_checker',
    tasks: ALL,
    type: { kind: 'boolean' },
    default: true,
    description: 'no checker is installed yet: `has_nsfw_concepts` entries are null (= not checked), never false',
    to: { output: 'enableSafetyChecker' },
  },
  { name: 'safety_checker_version', tasks: ALL, type: { kind: 'string', enum: ['v1'] }, default: 'v1', description: 'which checker' },
  {
    name: 'sync_mode',
    tasks: ALL,
    type: { kind: 'boolean' },
    default: false,
    description: 'return images as data URIs and keep no output files on the server',
    to: { output: 'syncMode' },
  },
  {
    name: 'model',
    tasks: ALL,
    type: { kind: 'string', enum: [] },
    servedModels: true,
    extension: true,
    description: 'which of the served models runs the request',
    to: { request: 'model' },
  },
  {
    name: 'sampler',
    tasks: ALL,
    type: { kind: 'string', enum: SAMPLERS },
    default: 'euler',
    extension: true,
    description: 'sampling method',
    to: { request: 'sampler' },
    cli: 'sampler',
  },
  {
    name: 'timestep_spacing',
    tasks: ALL,
    type: { kind: 'string', enum: TIMESTEP_SPACINGS },
    default: 'leading',
    extension: true,
    description: 'how the steps are spread over the noise schedule (trailing for Lightning/Turbo-style models)',
    to: { request: 'timestepSpacing' },
    cli: 'timestep-spacing',
  },
  {
    name: 'guidance_rescale',
    tasks: ALL,
    type: { kind: 'number', min: 0, max: 1 },
    default: 0,
    extension: true,
    description: 'rescales guided noise to fight over-exposure (Lin et al. 2023, arXiv:2305.08891); 0 = off',
    to: { request: 'guidanceRescale' },
    cli: 'guidance-rescale',
  },
  {
    name: 'crops_coords_top_left',
    tasks: ALL,
    type: { kind: 'array', items: { kind: 'integer', min: 0, max: MAX_SIDE }, minItems: 2, maxItems: 2 },
    default: [0, 0],
    extension: true,
    description: "SDXL's crop conditioning [top, left] in pixels: [0, 0] asks for a well-framed, centred image; larger values draw it as if cropped from a bigger one",
    to: { request: 'cropsCoordsTopLeft' },
  },
] satisfies RequestField[]);

/** The served models, for the `model` field's allowed values and default. */
export interface ServedModels {
  names: readonly string[];
  default?: string;
}

/** The fields an endpoint's task takes, in table order, with the `model` field bound to the served models. */
export function fieldsFor(task: Task, models: ServedModels = { names: [] }): RequestField[] {
  return REQUEST_FIELDS.filter((f) => f.tasks.includes(task)).map((f) =>
    f.servedModels ? { ...f, type: { kind: 'string', enum: models.names }, ...(models.default ? { default: models.default } : {}) } : f,
  );
}

/** Copy the one-to-one fields of a validated wire input into the request and delivery options they fill. */
export function mapFields(
  fields: readonly RequestField[],
  wire: Record<string, unknown>,
): { request: Partial<Pick<GenerateRequest, DirectRequestKey>>; output: Partial<OutputOptions> } {
  const request: Record<string, unknown> = {};
  const output: Record<string, unknown> = {};
  for (const f of fields) {
    const v = wire[f.name];
    if (v === undefined || !f.to) continue;
    if ('request' in f.to) request[f.to.request] = v;
    else output[f.to.output] = v;
  }
  return { request, output } as ReturnType<typeof mapFields>;
}

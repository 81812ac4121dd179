/**
 * The wire shapes of the HTTP boundary: the validated input (its fields come from the one table in
 * contract/fields.ts) and the output schema for the OpenAPI document.
 */
import type { Task } from '../contract/endpoints.ts';
import { fieldsFor, type RequestField } from '../contract/fields.ts';
import type { ImageSizePreset } from '../contract/tables.ts';

export type { Task } from '../contract/endpoints.ts';

/**
 * The validated wire input (defaults filled in). Typed here are only the fields the submit code turns into the
 * request by hand; every one-to-one field reaches the request through `mapFields` (contract/fields.ts).
 */
export interface WireInput extends Record<string, unknown> {
  prompt: string;
  negative_prompt?: string;
  image_url?: string;
  image_size: ImageSizePreset | { width: number; height: number };
  seed?: number;
  loras: { path: string; scale: number; force: boolean }[];
  embeddings: { path: string; tokens: string[] }[];
  preserve_aspect_ratio?: boolean;
  crop_output?: boolean;
}

/** An endpoint's fields (derived from the one table, contract/fields.ts), the `model` field bound to the served models. */
export function inputFields(task: Task, models: readonly string[], defaultModel?: string): RequestField[] {
  return fieldsFor(task, { names: models, ...(defaultModel ? { default: defaultModel } : {}) });
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

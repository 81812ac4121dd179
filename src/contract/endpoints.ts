/** The served endpoints: canonical id, the fal ids that alias it, and the pipeline task it runs. */

export const TASKS = Object.freeze(['text-to-image', 'image-to-image'] as const);
export type Task = (typeof TASKS)[number];

export interface EndpointDef {
  /** canonical id, e.g. "sdxl/image-to-image" */
  id: string;
  /** other ids a client may submit to (fal's) */
  aliases: readonly string[];
  task: Task;
  summary: string;
}

export const ENDPOINTS: readonly EndpointDef[] = Object.freeze([
  { id: 'sdxl/image-to-image', aliases: ['fal-ai/fast-sdxl/image-to-image'], task: 'image-to-image', summary: 'Transform an input image by a prompt with a strength' },
  { id: 'sdxl/text-to-image', aliases: ['fal-ai/fast-sdxl'], task: 'text-to-image', summary: 'Generate an image from a prompt' },
]);

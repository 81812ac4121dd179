/**
 * The contract between the service (api/, jobs/, cli/) and the engine (pipelines on a worker thread).
 * The service validates wire input (snake_case) and turns it into a GenerateRequest (camelCase);
 * the engine never sees HTTP and never validates user input again (it only asserts invariants).
 */

import type { OutputFormat, SamplerName, TimestepSpacing } from './tables.ts';

export type { SamplerName, TimestepSpacing } from './tables.ts';

/** An RGB image, 8 bits per channel, rows top to bottom, no padding: data.length = width*height*3. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface LoraSpec {
  /** absolute path of a local `.safetensors` file (URLs are fetched and cached by the service first) */
  file: string;
  /** 0 – 4 */
  scale: number;
}

export interface EmbeddingSpec {
  /** absolute path of a local `.safetensors` file */
  file: string;
  /** tokens bound to the embedding's vectors, in order, e.g. ["<s0>", "<s1>"] */
  tokens: string[];
}

export interface GenerateRequest {
  task: 'text-to-image' | 'image-to-image';
  /** model name as listed by Engine.listModels(); undefined = the default model */
  model?: string;
  prompt: string;
  /** null = no negative prompt (zero embeddings, as diffusers' force_zeros_for_empty_prompt); "" is encoded */
  negativePrompt: string | null;
  /** image-to-image input, already decoded and resized to width × height */
  image?: RgbImage;
  /** image-to-image only, 0.05 – 1 */
  strength: number;
  /** output size in pixels, multiples of 8 */
  width: number;
  height: number;
  /** 1 – 8 */
  numImages: number;
  /** 1 – 65 */
  steps: number;
  guidanceScale: number;
  guidanceRescale: number;
  /** SDXL micro-conditioning crop [top, left] (diffusers' crops_coords_top_left); absent = [0, 0] */
  cropsCoordsTopLeft?: readonly [number, number];
  /** 0 – 2^53-1 */
  seed: number;
  sampler: SamplerName;
  timestepSpacing: TimestepSpacing;
  loras: LoraSpec[];
  embeddings: EmbeddingSpec[];
  /** send a cheap latent preview with progress events */
  preview?: boolean;
}

/** How the service delivers the images of a request (not the engine's business). */
export interface OutputOptions {
  format: OutputFormat;
  /** return data URIs and keep no files */
  syncMode: boolean;
  enableSafetyChecker: boolean;
  expandPrompt: boolean;
}

export interface ProgressEvent {
  step: number; // 1-based, steps done so far
  total: number;
  elapsedMs: number;
  etaMs: number;
  /** cheap linear latent→RGB preview at latent resolution (1/the VAE scale factor: 1/8 for SDXL), when asked for */
  preview?: RgbImage;
}

export interface GenerateResult {
  images: RgbImage[];
  seed: number;
  /** seconds */
  timings: { inference: number; total: number; [stage: string]: number };
  /** human-readable log lines (e.g. LoRA keys that matched nothing) */
  logs: string[];
}

export interface ModelInfo {
  name: string;
  source: string;
  layout: 'diffusers' | 'single-file';
  isTestModel: boolean;
}

export interface GenerateOptions {
  onProgress?: (event: ProgressEvent) => void;
  onLog?: (line: string) => void;
  signal?: AbortSignal;
}

export interface Engine {
  generate(request: GenerateRequest, options?: GenerateOptions): Promise<GenerateResult>;
  listModels(): ModelInfo[];
  close(): Promise<void>;
}

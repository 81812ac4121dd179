/** Typed messages between the engine (main thread) and its worker thread. */
import type { EngineSettings } from '../contract/settings.ts';
import type { GenerateRequest, GenerateResult, ModelInfo, ProgressEvent } from '../contract/types.ts';

/** The worker's `workerData`: the engine settings, unchanged. */
export type WorkerInit = EngineSettings;

export type ToWorker =
  | { type: 'generate'; id: number; request: GenerateRequest; cancel: SharedArrayBuffer }
  | { type: 'shutdown' };

export type FromWorker =
  | { type: 'ready'; models: ModelInfo[] }
  | { type: 'progress'; id: number; event: ProgressEvent }
  | { type: 'log'; id: number; line: string }
  | { type: 'result'; id: number; result: GenerateResult }
  | { type: 'error'; id: number; error: { code: string; message: string; field?: string } }
  | { type: 'fatal'; message: string };

/**
 * The engine as the service sees it: a worker thread that keeps models warm and runs one generation at a time,
 * so onnxruntime's blocking calls never stall the server's event loop. Cancellation crosses threads through a
 * shared flag that the pipeline checks between steps.
 */
import { Worker } from 'node:worker_threads';
import { AtelierError, type ErrorCode, ERROR_CATALOG } from '../contract/errors.ts';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.ts';
import type { Engine, GenerateOptions, GenerateRequest, GenerateResult, ModelInfo } from '../contract/types.ts';

export interface EngineOptions {
  models: { name: string; path: string; isTestModel?: boolean; config?: string }[];
  defaultModel?: string;
  dataDir: string;
  threads?: number;
  device?: WorkerInit['device'];
  quantize?: WorkerInit['quantize'];
  vaeQuantize?: WorkerInit['vaeQuantize'];
  weights?: WorkerInit['weights'];
  oneShot?: boolean;
  maxLoadedModels?: number;
}

interface Pending {
  resolve: (r: GenerateResult) => void;
  reject: (e: unknown) => void;
  options: GenerateOptions;
  cancel: Int32Array;
  onAbort: () => void;
}

export async function createEngine(opts: EngineOptions): Promise<Engine> {
  const init: WorkerInit = {
    models: opts.models,
    defaultModel: opts.defaultModel,
    dataDir: opts.dataDir,
    threads: opts.threads,
    device: opts.device,
    quantize: opts.quantize,
    vaeQuantize: opts.vaeQuantize,
    weights: opts.weights,
    oneShot: opts.oneShot,
    maxLoadedModels: opts.maxLoadedModels ?? 1,
  };
  const worker = new Worker(new URL('./worker-entry.mjs', import.meta.url), {
    workerData: init,
  });
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let models: ModelInfo[] = [];
  let dead: Error | null = null;

  const ready = new Promise<void>((resolve, reject) => {
    worker.on('message', (msg: FromWorker) => {
      switch (msg.type) {
        case 'ready':
          models = msg.models;
          resolve();
          break;
        case 'progress':
          pending.get(msg.id)?.options.onProgress?.(msg.event);
          break;
        case 'log':
          pending.get(msg.id)?.options.onLog?.(msg.line);
          break;
        case 'result': {
          const p = pending.get(msg.id);
          pending.delete(msg.id);
          p?.options.signal?.removeEventListener('abort', p.onAbort);
          p?.resolve(msg.result);
          break;
        }
        case 'error': {
          const p = pending.get(msg.id);
          pending.delete(msg.id);
          p?.options.signal?.removeEventListener('abort', p.onAbort);
          const code = (msg.error.code in ERROR_CATALOG ? msg.error.code : 'INTERNAL') as ErrorCode;
          p?.reject(new AtelierError(code, msg.error.message, { field: msg.error.field }));
          break;
        }
        case 'fatal':
          dead = new AtelierError('NO_MODEL', msg.message);
          reject(dead);
          void worker.terminate();
          break;
      }
    });
    worker.on('error', (e: Error) => {
      dead = e;
      reject(e);
      for (const p of pending.values()) p.reject(new AtelierError('INTERNAL', `engine worker crashed: ${e.message}`, { cause: e }));
      pending.clear();
    });
    worker.on('exit', (code) => {
      if (!dead) dead = new AtelierError('INTERNAL', `engine worker exited with code ${code}`);
      reject(dead);
      for (const p of pending.values()) p.reject(dead);
      pending.clear();
    });
  });
  await ready;

  const post = (m: ToWorker) => worker.postMessage(m);

  return {
    listModels: () => models,
    generate(request: GenerateRequest, options: GenerateOptions = {}): Promise<GenerateResult> {
      if (dead) return Promise.reject(dead);
      if (options.signal?.aborted) return Promise.reject(new AtelierError('CANCELLED', 'the job was cancelled'));
      const id = nextId++;
      const shared = new SharedArrayBuffer(4);
      const cancel = new Int32Array(shared);
      return new Promise<GenerateResult>((resolve, reject) => {
        const onAbort = () => Atomics.store(cancel, 0, 1);
        options.signal?.addEventListener('abort', onAbort, { once: true });
        pending.set(id, { resolve, reject, options, cancel, onAbort });
        post({ type: 'generate', id, request, cancel: shared });
      });
    },
    async close(): Promise<void> {
      post({ type: 'shutdown' });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => void worker.terminate().then(() => resolve()), 10_000);
        worker.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

/**
 * Worker-thread entry of the engine: loads models, runs pipelines one job at a time, reports progress.
 * onnxruntime's run() blocks this thread; the main thread stays free.
 */
import os from 'node:os';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { AtelierError, isAtelierError } from '../contract/errors.ts';
import { runPipeline } from '../pipeline/generate.ts';
import { prepareAdapters } from '../adapters/index.ts';
import { ModelManager } from './model-manager.ts';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.ts';
import type { GenerateRequest, GenerateResult, ModelInfo } from '../contract/types.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
const send = (m: FromWorker) => port.postMessage(m);

const sources = new Map(init.models.map((m) => [m.name, { path: m.path, config: m.config }]));
const defaultModel = init.defaultModel ?? init.models[0]?.name;
const manager = new ModelManager(sources, {
  cacheDir: path.join(init.dataDir, 'cache'),
  settings: { threads: init.threads ?? os.availableParallelism(), provider: init.device ?? 'cpu' },
  maxLoaded: init.maxLoadedModels,
  quantize: init.quantize,
  vaeQuantize: init.vaeQuantize,
  weights: init.weights,
  oneShot: init.oneShot,
});

async function generate(id: number, request: GenerateRequest, cancelFlag: Int32Array): Promise<GenerateResult> {
  const t0 = performance.now();
  const controller = new AbortController();
  const poll = () => {
    if (!controller.signal.aborted && Atomics.load(cancelFlag, 0) === 1) controller.abort();
    return controller.signal;
  };
  const logs: string[] = [];
  const log = (line: string) => {
    logs.push(line);
    send({ type: 'log', id, line });
  };
  const name = request.model ?? defaultModel;
  if (!name) throw new AtelierError('NO_MODEL', 'no model is configured');
  const loaded = await manager.get(name);
  const adapters = await prepareAdapters(loaded, request, log);
  const started = performance.now();
  const signal = {
    get aborted() {
      return poll().aborted;
    },
  } as AbortSignal;
  const out = await runPipeline(loaded.pipeline, request, adapters, {
    signal,
    onStep: (step, total, preview) => {
      const elapsedMs = performance.now() - started;
      const etaMs = (elapsedMs / step) * (total - step);
      send({ type: 'progress', id, event: { step, total, elapsedMs, etaMs, ...(request.preview && preview ? { preview: preview() } : {}) } });
    },
  });
  const total = (performance.now() - t0) / 1000;
  return { images: out.images, seed: request.seed, timings: { ...out.timings, inference: out.timings.total, total }, logs };
}

let chain: Promise<void> = Promise.resolve();

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'shutdown') {
    chain = chain.then(async () => {
      await manager.closeAll();
      process.exit(0);
    });
    return;
  }
  const { id, request } = msg;
  const flag = new Int32Array(msg.cancel);
  chain = chain.then(async () => {
    try {
      const result = await generate(id, request, flag);
      send({ type: 'result', id, result });
    } catch (e) {
      const err = isAtelierError(e) ? e.toJSON() : { code: 'INTERNAL', message: (e as Error)?.message ?? String(e) };
      send({ type: 'error', id, error: err });
    }
  });
});

const models: ModelInfo[] = init.models.map((m) => ({
  name: m.name,
  source: m.path,
  layout: m.path.endsWith('.safetensors') ? 'single-file' : 'diffusers',
  isTestModel: m.isTestModel ?? false,
}));
// Load the default model before announcing readiness: the first request doesn't pay for it, and a broken
// checkpoint fails the start with its own message instead of failing every job.
const warm = defaultModel ? manager.get(defaultModel) : Promise.resolve();
warm.then(
  () => send({ type: 'ready', models }),
  (e) => send({ type: 'fatal', message: `could not load model "${defaultModel}": ${(e as Error)?.message ?? e}` }),
);

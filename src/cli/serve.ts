/**
 * `atelier serve`: resolve the models (flags, environment, a models folder, or the built-in tiny test model),
 * start the engine and the HTTP server, and shut down gracefully on SIGTERM / SIGINT
 * (the running job finishes within the grace period or goes back to the queue).
 */
import fs from 'node:fs';
import path from 'node:path';
import { helpText, loadConfig, type ServerConfig } from '../api/config.ts';
import type { FastifyInstance } from 'fastify';
import type { DiscoveredAdapters } from '../api/adapters.ts';
import { buildServer } from '../api/server.ts';
import { discoverModels } from '../weights/discover.ts';
import { ensureDefaultTestModel } from './make-test-model.ts';
import type { Engine } from '../contract/types.ts';
import type { EngineSettings, ModelEntry } from '../contract/settings.ts';
import { AtelierError } from '../contract/errors.ts';

export interface ServeDeps {
  /** defaults to createEngine from src/engine/engine.ts */
  createEngine?: (settings: EngineSettings) => Promise<Engine>;
  /** defaults to ensureDefaultTestModel from src/cli/make-test-model.ts */
  defaultTestModel?: (dataDir: string) => Promise<string>;
  /** install SIGTERM / SIGINT handlers (default true) */
  handleSignals?: boolean;
}

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

export async function serveCommand(argv: string[], deps: ServeDeps = {}): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  await startServer(loadConfig(argv, process.env), deps);
}

/** Start everything; resolves once the server listens. */
export async function startServer(config: ServerConfig, deps: ServeDeps = {}): Promise<RunningServer> {
  const unlock = lockDataDir(config.engine.dataDir);
  let engine: Engine | undefined;
  let app: FastifyInstance | undefined;
  try {
    const { models, discovered } = await resolveModels(config, deps);
    const createEngine = deps.createEngine ?? (await import('../engine/engine.ts')).createEngine;
    engine = await createEngine({ ...config.engine, models });
    app = buildServer(config, { engine, discovered });
    for (const m of engine.listModels()) {
      app.log.info({ model: m.name, source: m.source, layout: m.layout, testModel: m.isTestModel }, 'model ready');
    }
    await app.listen({ port: config.port, host: config.host });
  } catch (e) {
    await app?.close().catch(() => undefined);
    await engine?.close().catch(() => undefined);
    unlock();
    throw e;
  }
  return running(config, app, engine, unlock, deps);
}

function running(config: ServerConfig, app: FastifyInstance, engine: Engine, unlock: () => void, deps: ServeDeps): RunningServer {
  const addr = app.server.address();
  const port = addr && typeof addr === 'object' ? addr.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  app.log.info({ url, docs: `${url}/docs`, dataDir: config.engine.dataDir, auth: config.apiKeys.length + config.adminKeys.length > 0 }, `Atelier listening on ${url}`);

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await app.close();
      await engine.close();
      unlock();
    })());
  if (deps.handleSignals ?? true) {
    const onSignal = (signal: NodeJS.Signals) => {
      if (closing) {
        app.log.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      app.log.info({ signal }, 'signal received: finishing the running job (or re-queueing it), then exiting');
      close().then(
        () => process.exit(0),
        (e: unknown) => {
          app.log.error({ err: e }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  return { url, close };
}

/** Explicit models, then a models folder, else the built-in tiny test model (said plainly in the log). */
async function resolveModels(
  config: ServerConfig,
  deps: ServeDeps,
): Promise<{ models: ModelEntry[]; discovered: DiscoveredAdapters }> {
  const models: ModelEntry[] = [...config.engine.models];
  const discovered: DiscoveredAdapters = { loras: [], embeddings: [] };
  if (config.modelsDir) {
    const found = await discoverModels(config.modelsDir);
    discovered.loras = found.loras;
    discovered.embeddings = found.embeddings;
    for (const c of found.checkpoints) models.push({ name: c.name, path: c.path });
    if (found.checkpoints.length === 0) log(40, `no SDXL checkpoints found in --models-dir ${config.modelsDir}`);
  }
  if (models.length === 0) {
    const make = deps.defaultTestModel ?? ensureDefaultTestModel;
    const file = await make(config.engine.dataDir);
    log(
      40,
      'No model configured: serving the built-in tiny TEST model. It has random weights and generates noise, not pictures. ' +
        'To serve a real SDXL checkpoint, start with --model /path/to/sd_xl_base_1.0.safetensors (or a diffusers folder), ' +
        'or set ATELIER_MODEL, or point --models-dir / ATELIER_MODELS_DIR at an A1111 or ComfyUI models folder.',
      { testModel: file },
    );
    models.push({ name: 'tiny-test', path: file, isTestModel: true });
  }
  // Names must be unique: the `model` field chooses by name.
  const seen = new Map<string, number>();
  const unique = models.map((m) => {
    const n = (seen.get(m.name) ?? 0) + 1;
    seen.set(m.name, n);
    return n === 1 ? m : { ...m, name: `${m.name}-${n}`, path: path.resolve(m.path) };
  });
  return { models: unique, discovered };
}

/**
 * One server per data folder: a second one would take over the first one's running jobs at start-up.
 * `<dataDir>/server.pid` names the owner; a pid that is no longer alive (kill -9, crash) is stale and replaced.
 */
function lockDataDir(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, 'server.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return () => fs.rmSync(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new AtelierError('BAD_REQUEST', `another Atelier server (pid ${pid}) is using the data folder ${dataDir}; stop it or choose another --data-dir`);
      }
      fs.rmSync(file, { force: true }); // stale: its owner is gone
    }
  }
  throw new AtelierError('INTERNAL', `could not take ${file}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A pino-compatible JSON line for messages logged before the server (and its logger) exists. */
function log(level: number, msg: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ level, time: Date.now(), pid: process.pid, ...extra, msg })}\n`);
}

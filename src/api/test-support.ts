/**
 * Test support for the service: the engine factory used by every API/jobs test, plus small helpers
 * (temp data dirs, a config, listening on loopback, a PNG data URI).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import type { FastifyInstance } from 'fastify';
import { oracleDir } from '../paths.ts';
import { createEngine } from '../engine/engine.ts';
import { engineSettings } from '../contract/settings.ts';
import type { Engine } from '../contract/types.ts';
import { loadConfig, type ServerConfig } from './config.ts';

export interface TestEngineOptions {
  /** accepted for compatibility; the real engine's step time is what it is */
  stepMs?: number;
  /** names of the served models (default one: "tiny-test"); the first is the default. They alternate between the
   * oracle's tiny SDXL as a diffusers folder and as a single file, so two names are two distinct checkpoints. */
  models?: string[];
}

/** The REAL engine (worker thread, onnxruntime) on the diffusers reference's tiny random SDXL model. */
export async function createTestEngine(opts: TestEngineOptions = {}): Promise<Engine> {
  const sources = [path.join(oracleDir(), 'tiny-sdxl'), path.join(oracleDir(), 'tiny-sdxl.safetensors')];
  const names = opts.models ?? ['tiny-test'];
  return createEngine(
    engineSettings({
      models: names.map((name, i) => ({ name, path: sources[i % sources.length]!, isTestModel: true })),
      dataDir: tempDir('atelier-engine-').dir,
      threads: 1,
    }),
  );
}


/** A fresh temp folder, removed by the returned function. */
export function tempDir(prefix = 'atelier-test-'): { dir: string; remove: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** A config for tests: temp data dir, loopback fetches allowed, fast webhook retries, quiet logs. */
export function testConfig(dataDir: string, overrides: Partial<ServerConfig> = {}): ServerConfig {
  const base = loadConfig([], {}, dataDir);
  return {
    ...base,
    engine: { ...base.engine, dataDir },
    allowNetworks: ['127.0.0.0/8', '::1/128'],
    webhookRetryBaseMs: 50,
    shutdownGraceMs: 2000,
    logLevel: 'warn',
    ...overrides,
  };
}

/** Listen on 127.0.0.1 with a random port; returns the base URL. */
export async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('no TCP address');
  return `http://127.0.0.1:${addr.port}`;
}

/** A small PNG as a data: URI. */
export async function pngDataUri(width = 96, height = 64): Promise<string> {
  const data = Buffer.alloc(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 251;
  const png = await sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}

export async function waitFor<T>(fn: () => Promise<T | undefined | false>, timeoutMs = 10_000, everyMs = 10): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

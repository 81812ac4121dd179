import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { createEngine } from './engine.ts';
import { engineSettings } from '../contract/settings.ts';
import type { Engine, GenerateRequest, ProgressEvent } from '../contract/types.ts';

let engine: Engine;

before(async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-engine-'));
  engine = await createEngine(engineSettings({ models: [{ name: 'tiny-sdxl', path: path.join(oracleDir(), 'tiny-sdxl') }], dataDir, threads: 1 }));
});
after(async () => engine?.close());

const base: GenerateRequest = {
  task: 'text-to-image',
  prompt: 'a watercolor painting of a red fox',
  negativePrompt: null,
  strength: 1,
  width: 128,
  height: 128,
  numImages: 1,
  steps: 6,
  guidanceScale: 5,
  guidanceRescale: 0,
  seed: 7,
  sampler: 'euler',
  timestepSpacing: 'leading',
  loras: [],
  embeddings: [],
};

test('generates in a worker thread with per-step progress and previews', async () => {
  const events: ProgressEvent[] = [];
  const r = await engine.generate({ ...base, preview: true }, { onProgress: (e) => events.push(e) });
  assert.equal(r.images.length, 1);
  assert.equal(r.images[0].width, 128);
  assert.equal(r.images[0].data.length, 128 * 128 * 3);
  assert.deepEqual(events.map((e) => e.step), [1, 2, 3, 4, 5, 6]);
  assert.ok(events.every((e) => e.total === 6 && e.elapsedMs >= 0 && e.etaMs >= 0));
  assert.equal(events[0].preview?.width, 16);
  assert.equal(r.seed, 7);
  assert.ok(r.timings.inference > 0);
});

test('the main event loop stays responsive while a job runs', async () => {
  let maxGap = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 5);
  const t0 = performance.now();
  await engine.generate({ ...base, width: 256, height: 256, steps: 8 });
  const took = performance.now() - t0;
  clearInterval(timer);
  assert.ok(took > 200, `the job should take a while to be meaningful (took ${took.toFixed(0)} ms)`);
  assert.ok(maxGap < Math.max(100, took / 4), `event loop stalled for ${maxGap.toFixed(0)} ms during a ${took.toFixed(0)} ms job`);
});

test('cancellation stops a running job between steps', async () => {
  const ac = new AbortController();
  let steps = 0;
  await assert.rejects(
    engine.generate({ ...base, steps: 20 }, { signal: ac.signal, onProgress: () => ++steps === 2 && ac.abort() }),
    (e: Error & { code?: string }) => e.code === 'CANCELLED',
  );
  assert.ok(steps < 20, `stopped after ${steps} steps`);
  // the engine keeps working after a cancel
  const r = await engine.generate({ ...base, steps: 1 });
  assert.equal(r.images.length, 1);
});

test('the same request twice gives identical bytes; an unknown model is a clear error', async () => {
  const a = await engine.generate({ ...base, steps: 2 });
  const b = await engine.generate({ ...base, steps: 2 });
  assert.deepEqual(Buffer.from(a.images[0].data), Buffer.from(b.images[0].data));
  await assert.rejects(engine.generate({ ...base, model: 'nope' }), /model "nope" is not served; available: tiny-sdxl/);
});

test('a broken checkpoint fails the engine start with its own message', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-broken-'));
  const file = path.join(dir, 'broken.safetensors');
  fs.writeFileSync(file, Buffer.from('not a safetensors file at all'));
  await assert.rejects(createEngine(engineSettings({ models: [{ name: 'broken', path: file }], dataDir: dir })), /could not load model "broken": .*broken\.safetensors/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { runPipeline } from '../pipeline/generate.ts';
import { requestFromTrace } from '../pipeline/trace-request.ts';
import { makeTestModel } from '../weights/test-model.ts';
import type { SdxlModel } from '../weights/types.ts';
import { openTestModel } from './test-support.ts';

const dtypes = (m: SdxlModel) =>
  Object.fromEntries((['unet', 'textEncoder1', 'textEncoder2', 'vae'] as const).map((c) => [c, [...new Set([...m.weights[c].values()].map((t) => t.dtype))].join()]));

const cacheFiles = (dir: string) =>
  fs
    .readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.safetensors'))
    .map((f) => path.basename(f))
    .sort();

test('weights fp16: a 16-bit checkpoint is used as stored and gives the images of its fp32 copy', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-wp-'));
  const src = await makeTestModel({ outDir: path.join(dir, 'f16'), layout: 'diffusers', seed: 11, dtype: 'F16' });
  const { request } = await requestFromTrace(oracleDir(), 'txt2img_trace');
  const cacheDir = path.join(dir, 'cache');

  const half = await openTestModel(src, cacheDir, { weights: 'fp16' });
  assert.deepEqual(dtypes(half.model), { unet: 'F16', textEncoder1: 'F16', textEncoder2: 'F16', vae: 'F32' });
  assert.deepEqual(cacheFiles(cacheDir), ['vae.safetensors'], 'only the VAE is converted');
  const a = await runPipeline(half.pipeline, request);
  await half.release();

  const full = await openTestModel(src, cacheDir); // default: fp32
  assert.deepEqual(dtypes(full.model), { unet: 'F32', textEncoder1: 'F32', textEncoder2: 'F32', vae: 'F32' });
  const b = await runPipeline(full.pipeline, request);
  await full.release();

  let max = 0;
  for (let i = 0; i < a.imagesFloat.length; i++) max = Math.max(max, Math.abs(a.imagesFloat[i] - b.imagesFloat[i]));
  assert.ok(max < 1e-5, `16-bit resident vs fp32 copy: max abs difference ${max}`);
  let levels = 0;
  for (let i = 0; i < a.images[0].data.length; i++) levels = Math.max(levels, Math.abs(a.images[0].data[i] - b.images[0].data[i]));
  assert.ok(levels <= 1, `8-bit images differ by ${levels} levels`);
});

test('weights fp16: a float32 checkpoint is converted once to 16 bits, images stay close to fp32', async () => {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-wp16-'));
  const src = path.join(oracleDir(), 'tiny-sdxl');
  const { request } = await requestFromTrace(oracleDir(), 'txt2img_trace');
  const ref = await openTestModel(src, cacheDir);
  assert.deepEqual(dtypes(ref.model), { unet: 'F32', textEncoder1: 'F32', textEncoder2: 'F32', vae: 'F32' }, 'default: float32');
  const want = await runPipeline(ref.pipeline, request);
  await ref.release();
  assert.deepEqual(cacheFiles(cacheDir), [], 'a float32 checkpoint needs no conversion by default');

  for (let round = 0; round < 2; round++) {
    const m = await openTestModel(src, cacheDir, { weights: 'fp16' });
    assert.deepEqual(dtypes(m.model), { unet: 'F16', textEncoder1: 'F16', textEncoder2: 'F16', vae: 'F32' });
    const got = await runPipeline(m.pipeline, request);
    await m.release();
    let sum = 0;
    for (let i = 0; i < want.imagesFloat.length; i++) sum += Math.abs(want.imagesFloat[i] - got.imagesFloat[i]);
    const mean = sum / want.imagesFloat.length;
    assert.ok(mean > 0 && mean < 5e-3, `fp16 weights: mean abs difference to fp32 ${mean}`);
  }
  assert.deepEqual(cacheFiles(cacheDir), ['textEncoder1.f16.safetensors', 'textEncoder2.f16.safetensors', 'unet.f16.safetensors'], 'converted once, reused');
});

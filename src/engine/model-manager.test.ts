import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { runPipeline } from '../pipeline/generate.ts';
import { requestFromTrace } from '../pipeline/trace-request.ts';
import { openTestModel } from './test-support.ts';
import type { GenerateRequest } from '../contract/types.ts';
import type { EngineSettings } from '../contract/settings.ts';
import { textEmbedDim, type UNetInputs } from '../networks/unet.ts';
import type { UNetConfig } from '../weights/types.ts';

/** Open the model with `opts`, run `request` once, release: the float image. */
async function imageWith(src: string, cacheDir: string, request: GenerateRequest, opts: Partial<EngineSettings> = {}): Promise<Float32Array> {
  const m = await openTestModel(src, cacheDir, { ...opts });
  try {
    return (await runPipeline(m.pipeline, request)).imagesFloat;
  } finally {
    await m.release();
  }
}

function meanAbsDiff(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

test('quantised UNet option: the cache is written once, images stay close to fp32', async () => {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-quant-'));
  const src = path.join(oracleDir(), 'tiny-sdxl');
  const { request } = await requestFromTrace(oracleDir(), 'txt2img_trace');
  const ref = await imageWith(src, cacheDir, request);
  for (const scheme of ['int8', 'int8-block', 'int8-full'] as const) {
    const mean = meanAbsDiff(ref, await imageWith(src, cacheDir, request, { quantize: scheme }));
    assert.ok(mean > 0, `${scheme}: the quantised path must actually run`);
    assert.ok(mean < 0.05, `${scheme}: mean abs difference to fp32 ${mean}`);
  }
  const files = fs.readdirSync(cacheDir, { recursive: true }).map(String).filter((f) => f.endsWith('.safetensors'));
  assert.deepEqual(files.map((f) => path.basename(f)).sort(), ['unet-int8-block.safetensors', 'unet-int8.safetensors']);
  // `int8-full` (the `int8` Linear cache) also runs the resnet convolutions in int8: calibrated once
  const calibrations = fs.readdirSync(cacheDir, { recursive: true }).map(String).filter((f) => f.endsWith('-calibration.json'));
  assert.deepEqual(calibrations.map((f) => path.basename(f)), ['unet-int8-calibration.json']);
  const cal = JSON.parse(fs.readFileSync(path.join(cacheDir, calibrations[0]), 'utf8'));
  assert.equal(Object.keys(cal.ranges).length, 2 * 11, 'conv1/conv2 of the UNet\'s mid and up resnets (2 + 9)');
  assert.ok(cal.snrDb >= 20, `calibration SNR ${cal.snrDb}`);
});

test('int8 VAE decoder option: calibrated once into the cache, images stay close to fp32', async () => {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-vaeq-'));
  const src = path.join(oracleDir(), 'tiny-sdxl');
  const { request } = await requestFromTrace(oracleDir(), 'img2img_trace');
  const ref = await imageWith(src, cacheDir, request);
  for (let round = 0; round < 2; round++) {
    const mean = meanAbsDiff(ref, await imageWith(src, cacheDir, request, { vaeQuantize: 'int8' }));
    assert.ok(mean > 0, 'the int8 decoder must actually run');
    assert.ok(mean < 0.03, `mean abs difference to fp32 ${mean}`);
  }
  const files = fs.readdirSync(cacheDir, { recursive: true }).map(String).filter((f) => f.endsWith('.json') && !f.endsWith('source.json'));
  assert.deepEqual(files.map((f) => path.basename(f)), ['vae_decoder-int8-calibration.json']);
});

test('one-shot model: networks are released once the pipeline is past them, the image is unchanged', async () => {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-oneshot-'));
  const src = path.join(oracleDir(), 'tiny-sdxl');
  for (const name of ['txt2img_trace', 'img2img_trace']) {
    const { request } = await requestFromTrace(oracleDir(), name);
    const warm = await openTestModel(src, cacheDir);
    const want = await runPipeline(warm.pipeline, request);
    const again = await runPipeline(warm.pipeline, request);
    assert.deepEqual(Buffer.from(again.images[0].data), Buffer.from(want.images[0].data), 'a warm model serves any number of runs');
    await warm.release();
    const once = await openTestModel(src, cacheDir, { oneShot: true });
    const got = await runPipeline(once.pipeline, request);
    assert.deepEqual(Buffer.from(got.images[0].data), Buffer.from(want.images[0].data), `${name}: same image`);
    await assert.rejects(runPipeline(once.pipeline, request), /was released/, 'the text encoders are gone after the run');
    await assert.rejects(once.unet.run(unetFeeds(once.model.config.unet)), /was released/, 'so is the UNet');
    await once.release(); // idempotent
  }
});

function unetFeeds(c: UNetConfig): UNetInputs {
  return {
    sample: new Float32Array(c.inChannels * 8 * 8),
    batch: 1,
    height: 8,
    width: 8,
    timestep: new Float32Array(1),
    encoderHiddenStates: new Float32Array(77 * c.crossAttentionDim),
    seqLen: 77,
    textEmbeds: new Float32Array(textEmbedDim(c)),
    timeIds: new Float32Array(6),
  };
}

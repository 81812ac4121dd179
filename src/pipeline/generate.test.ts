import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { openTestModel } from '../engine/test-support.ts';
import type { LoadedModel } from '../engine/model-manager.ts';
import { TraceFile, maxAbsErr } from '../weights/trace.ts';
import { runPipeline } from './generate.ts';
import { requestFromTrace } from './trace-request.ts';

const ORACLE = oracleDir();
let model: LoadedModel;

before(async () => {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-pipe-'));
  model = await openTestModel(path.join(ORACLE, 'tiny-sdxl'), cacheDir);
});
after(async () => model?.release());

/** NCHW [1,3,H,W] → NHWC like diffusers' output/image_np */
function toNhwc(t: Float32Array, H: number, W: number): Float32Array {
  const out = new Float32Array(t.length);
  for (let c = 0; c < 3; c++) for (let i = 0; i < H * W; i++) out[i * 3 + c] = t[c * H * W + i];
  return out;
}

async function reproduce(name: string) {
  const { request } = await requestFromTrace(ORACLE, name);
  const trace = await TraceFile.open(path.join(ORACLE, `${name}.safetensors`));
  const got = new Map<string, Float32Array>();
  const out = await runPipeline(model.pipeline, request, {}, { trace: (k, v) => got.set(k, v.slice()), longPrompts: 'truncate' });
  const want = await trace.f32('output/image_np');
  const image = toNhwc(out.imagesFloat, request.height, request.width);
  return { request, trace, got, out, image, want };
}

describe('pipelines reproduce the diffusers traces from their seeds', () => {
  test('img2img_trace (Euler, strength 0.6, CFG 5, seed 0)', async () => {
    const { trace, got, out, image, want } = await reproduce('img2img_trace');
    assert.deepEqual(Array.from(out.images[0].data.slice(0, 0)), []);
    const inputPixels = await trace.u8('input/image_uint8_hwc');
    const { request } = await requestFromTrace(ORACLE, 'img2img_trace');
    assert.deepEqual(Buffer.from(request.image!.data), Buffer.from(inputPixels), 'decoded init image equals the recorded pixels');
    for (const k of ['unet_cond/encoder_hidden_states', 'unet_cond/text_embeds', 'unet_cond/time_ids', 'vae/encode_input', 'add_noise/original_samples', 'add_noise/noisy_samples']) {
      const err = maxAbsErr(got.get(k)!, await trace.f32(k));
      assert.ok(err < 1e-4, `${k}: max abs err ${err}`);
    }
    const err = maxAbsErr(image, want);
    assert.ok(err < 1e-3, `output/image_np max abs err ${err}`);
    // 8-bit output within one level of the reference rounded the same way
    let maxLevel = 0;
    for (let i = 0; i < want.length; i++) maxLevel = Math.max(maxLevel, Math.abs(out.images[0].data[i] - Math.round(want[i] * 255)));
    assert.ok(maxLevel <= 1, `8-bit difference ${maxLevel}`);
  });

  test('txt2img_trace (Euler, 8 steps, seed 1)', async () => {
    const { image, want, got, trace } = await reproduce('txt2img_trace');
    const e0 = maxAbsErr(got.get('step00/noise_pred_raw')!, await trace.f32('step00/noise_pred_raw'));
    assert.ok(e0 < 1e-4, `step00 noise_pred_raw ${e0}`);
    const err = maxAbsErr(image, want);
    assert.ok(err < 1e-3, `output/image_np max abs err ${err}`);
  });

  for (const s of ['euler_ancestral', 'heun', 'dpmpp_2m', 'dpmpp_2m_karras', 'ddim', 'lcm', 'euler_trailing']) {
    test(`sampler_${s}_txt2img_trace`, async () => {
      const { image, want } = await reproduce(`sampler_${s}_txt2img_trace`);
      const err = maxAbsErr(image, want);
      assert.ok(err < 1e-3, `output/image_np max abs err ${err}`);
    });
  }

  test('same request twice gives identical pixels', async () => {
    const { request } = await requestFromTrace(ORACLE, 'txt2img_trace');
    const a = await runPipeline(model.pipeline, { ...request, steps: 3 });
    const b = await runPipeline(model.pipeline, { ...request, steps: 3 });
    assert.deepEqual(Buffer.from(a.images[0].data), Buffer.from(b.images[0].data));
  });

  test('strength 0.05 at 25 steps still runs one denoising step and changes the image', async () => {
    const { request } = await requestFromTrace(ORACLE, 'img2img_trace');
    let steps = 0;
    const out = await runPipeline(model.pipeline, { ...request, strength: 0.05, steps: 25 }, {}, { onStep: () => steps++ });
    assert.equal(steps, 1);
    assert.notDeepEqual(Buffer.from(out.images[0].data), Buffer.from(request.image!.data));
  });

  test('a batch of 3 images: distinct images, the first equals nothing random across runs', async () => {
    const { request } = await requestFromTrace(ORACLE, 'txt2img_trace');
    const out = await runPipeline(model.pipeline, { ...request, steps: 2, numImages: 3 });
    assert.equal(out.images.length, 3);
    assert.notDeepEqual(Buffer.from(out.images[0].data), Buffer.from(out.images[1].data));
  });

  test('large batches run in UNet slices with the same result', async () => {
    const { request } = await requestFromTrace(ORACLE, 'txt2img_trace');
    const r = { ...request, steps: 2, numImages: 3 };
    const whole = await runPipeline(model.pipeline, r);
    let calls = 0;
    const counting = { ...model.pipeline, unet: { run: (i: Parameters<typeof model.pipeline.unet.run>[0], l?: Parameters<typeof model.pipeline.unet.run>[1]) => (calls++, model.pipeline.unet.run(i, l)) } };
    const sliced = await runPipeline(counting, r, {}, { maxBatchLatentPixels: 2 * 8 * 8 });
    assert.equal(calls, 2 * 3, 'CFG batch 6 in slices of 2, for 2 steps');
    const err = maxAbsErr(whole.imagesFloat, sliced.imagesFloat);
    assert.ok(err < 1e-5, `sliced vs whole batch: ${err}`);
  });

  test('cancellation between steps', async () => {
    const { request } = await requestFromTrace(ORACLE, 'txt2img_trace');
    const ac = new AbortController();
    let steps = 0;
    await assert.rejects(
      runPipeline(model.pipeline, request, {}, { signal: ac.signal, onStep: () => ++steps === 2 && ac.abort() }),
      (e: Error & { code?: string }) => e.code === 'CANCELLED',
    );
    assert.equal(steps, 2);
  });

  /** The model with its real text encoders and UNet wrapped to count the chunks encoded and the UNet calls. */
  function counted(onChunk?: () => void) {
    const counts = { chunks: 0, unet: 0 };
    const wrap = (e: (typeof model.pipeline.encoderSet.encoders)[0]) => ({
      hiddenSize: e.hiddenSize,
      encode: async (...a: Parameters<typeof e.encode>) => {
        const r = await e.encode(...a);
        counts.chunks += a[1];
        onChunk?.();
        return r;
      },
    });
    const [e1, e2] = model.pipeline.encoderSet.encoders;
    const pipeline = {
      ...model.pipeline,
      encoderSet: { ...model.pipeline.encoderSet, encoders: [wrap(e1), wrap(e2)] as typeof model.pipeline.encoderSet.encoders },
      unet: { run: (i: Parameters<typeof model.pipeline.unet.run>[0], l?: Parameters<typeof model.pipeline.unet.run>[1]) => (counts.unet++, model.pipeline.unet.run(i, l)) },
    };
    return { pipeline, counts };
  }

  test('cancellation during conditioning: a long prompt stops within one chunk, before denoising', async () => {
    const { request } = await requestFromTrace(ORACLE, 'txt2img_trace');
    const long = 'a lighthouse on a cliff at dawn, '.repeat(300).slice(0, 10_000);
    const isCancelled = (e: Error & { code?: string }) => e.code === 'CANCELLED';
    const whole = counted();
    await runPipeline(whole.pipeline, { ...request, prompt: long, negativePrompt: long, steps: 1 });
    assert.ok(whole.counts.chunks > 20, `the prompt is many chunks (${whole.counts.chunks} encoded for both prompts and encoders)`);

    const already = counted();
    await assert.rejects(runPipeline(already.pipeline, { ...request, prompt: long }, {}, { signal: AbortSignal.abort() }), isCancelled);
    assert.deepEqual(already.counts, { chunks: 0, unet: 0 }, 'an already-cancelled job encodes nothing');

    const ac = new AbortController();
    const soon = counted(() => ac.abort());
    await assert.rejects(runPipeline(soon.pipeline, { ...request, prompt: long, negativePrompt: long }, {}, { signal: ac.signal }), isCancelled);
    assert.equal(soon.counts.unet, 0);
    assert.ok(soon.counts.chunks <= 2, `stopped within one chunk: ${soon.counts.chunks} of ${whole.counts.chunks} chunk encodings done`);
  });

  test('a long prompt chunk by chunk: same conditioning as the chunks encoded in one batch', async () => {
    const { request } = await requestFromTrace(ORACLE, 'txt2img_trace');
    const long = 'an oil painting of a harbour, boats, gulls, '.repeat(12);
    const got = new Map<string, Float32Array>();
    await runPipeline(model.pipeline, { ...request, prompt: long, steps: 1 }, {}, { trace: (k, v) => got.set(k, v.slice()) });
    const hidden = got.get('unet_cond/encoder_hidden_states')!;
    const [t1, t2] = model.pipeline.encoderSet.tokenizers;
    const rows1 = t1.tokenizeForModel(long, { long: 'chunk' });
    const rows2 = t2.tokenizeForModel(long, { long: 'chunk' });
    assert.ok(rows1.length > 1 && rows1.length === rows2.length);
    const [e1, e2] = model.pipeline.encoderSet.encoders;
    const b1 = await e1.encode(BigInt64Array.from(rows1.flat(), BigInt), rows1.length);
    const b2 = await e2.encode(BigInt64Array.from(rows2.flat(), BigInt), rows2.length);
    const d = e1.hiddenSize + e2.hiddenSize;
    const seq = rows1.length * 77;
    assert.equal(hidden.length, 2 * seq * d, 'CFG: zero negative, then the positive');
    let err = 0;
    for (let t = 0; t < seq; t++) {
      for (let j = 0; j < e1.hiddenSize; j++) err = Math.max(err, Math.abs(hidden[(seq + t) * d + j]! - b1.penultimate[t * e1.hiddenSize + j]!));
      for (let j = 0; j < e2.hiddenSize; j++) err = Math.max(err, Math.abs(hidden[(seq + t) * d + e1.hiddenSize + j]! - b2.penultimate[t * e2.hiddenSize + j]!));
    }
    assert.ok(err < 1e-5, `per-chunk vs batched encoding: max abs err ${err}`);
  });
});

test('crops_coords_top_left reaches the UNet as SDXL micro-conditioning (time_ids = [h, w, top, left, h, w])', async () => {
  const { request } = await requestFromTrace(ORACLE, 'txt2img_trace');
  const run = async (crop?: readonly [number, number]) => {
    const got = new Map<string, Float32Array>();
    const out = await runPipeline(model.pipeline, { ...request, steps: 2, ...(crop ? { cropsCoordsTopLeft: crop } : {}) }, {}, { trace: (k, v) => got.set(k, v.slice()), longPrompts: 'truncate' });
    return { ids: Array.from(got.get('unet_cond/time_ids')!), image: out.imagesFloat };
  };
  const plain = await run();
  const zero = await run([0, 0]);
  const cropped = await run([48, 16]);
  const { height: h, width: w } = request;
  assert.deepEqual(plain.ids.slice(0, 6), [h, w, 0, 0, h, w]);
  assert.deepEqual(zero.image, plain.image, 'absent = [0, 0]');
  assert.deepEqual(cropped.ids, [h, w, 48, 16, h, w, h, w, 48, 16, h, w], 'both halves of the CFG batch');
  assert.ok(maxAbsErr(cropped.image, plain.image) > 1e-4, 'the UNet sees the crop');
});

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { openTestModel } from '../engine/test-support.ts';
import type { LoadedModel } from '../engine/model-manager.ts';
import { makeTestModel } from '../weights/test-model.ts';
import { TINY_CONFIGS } from '../weights/test-model-spec.ts';
import { maxAbsErr } from '../weights/trace.ts';
import type { GenerateRequest } from '../contract/types.ts';
import { requestFromTrace } from './trace-request.ts';
import { checkSize, runPipeline } from './generate.ts';
import { imageToTensor } from './image-tensor.ts';

/** The tiny test model with a VAE of 3 levels (32, 32, 64): scale factor 4 instead of SDXL's 8. */
const CONFIGS = { ...TINY_CONFIGS, vae: { ...TINY_CONFIGS.vae, blockOutChannels: [32, 32, 64] } };
let model: LoadedModel;
let tmp: string;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-vae4-'));
  const dir = await makeTestModel({ outDir: path.join(tmp, 'model'), layout: 'diffusers', seed: 7, configs: CONFIGS });
  model = await openTestModel(dir, path.join(tmp, 'cache'));
});
after(async () => {
  await model?.release();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** clamp(x / 2 + 0.5, 0, 1), as the pipeline does after decoding */
function toUnit(decoded: Float32Array): Float32Array {
  return decoded.map((v) => Math.min(1, Math.max(0, v / 2 + 0.5)));
}

function meanAbs(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

async function baseRequest(): Promise<GenerateRequest> {
  const { request } = await requestFromTrace(oracleDir(), 'img2img_trace'); // 64×64 input image
  return { ...request, steps: 4, guidanceScale: 5 };
}

describe('a VAE with 3 levels (scale factor 4)', () => {
  test('the loaded pipeline exposes the factor read off the VAE config', () => {
    assert.equal(model.pipeline.vaeScaleFactor, 4);
  });

  for (const [width, height] of [[64, 64], [48, 64]]) {
    test(`text-to-image ${width}×${height}: latents are H/4 × W/4 and the image is the decoder's output on the final latents`, async () => {
      const r = { ...(await baseRequest()), task: 'text-to-image' as const, image: undefined, strength: 1, width, height };
      const got = new Map<string, Float32Array>();
      const out = await runPipeline(model.pipeline, r, {}, { trace: (k, v) => got.set(k, v.slice()) });
      const [h, w] = [height / 4, width / 4];
      const z = got.get('vae/decode_input')!;
      assert.equal(z.length, 4 * h * w, 'final latents [1, 4, H/4, W/4]');
      assert.equal(got.get('step00/noise_pred_raw')!.length, 2 * 4 * h * w, 'UNet ran on [2, 4, H/4, W/4]');
      assert.equal(out.images[0].width, width);
      assert.equal(out.images[0].height, height);
      assert.equal(out.images[0].data.length, width * height * 3);
      const direct = toUnit(await model.pipeline.vaeDecoder.decode(z, 1, h, w));
      assert.equal(direct.length, out.imagesFloat.length);
      assert.equal(maxAbsErr(out.imagesFloat, direct), 0, 'image = VAE decoder run directly on the final latents');
      const spread = Math.max(...direct) - Math.min(...direct);
      assert.ok(spread > 0.05, `the image is not flat (${spread})`);
    });
  }

  test('image-to-image runs: latents H/4 × W/4, and at low strength the result stays close to encode→decode of the input', async () => {
    const r = { ...(await baseRequest()), strength: 0.1, steps: 10, guidanceScale: 1 };
    const got = new Map<string, Float32Array>();
    const out = await runPipeline(model.pipeline, r, {}, { trace: (k, v) => got.set(k, v.slice()) });
    assert.equal(got.get('add_noise/original_samples')!.length, 4 * 16 * 16);
    assert.equal(out.images[0].width, 64);
    assert.equal(out.images[0].height, 64);
    const direct = toUnit(await model.pipeline.vaeDecoder.decode(got.get('vae/decode_input')!, 1, 16, 16));
    assert.equal(maxAbsErr(out.imagesFloat, direct), 0, 'image = VAE decoder run directly on the final latents');
    // encode → decode of the input, with the latent the pipeline drew (original_samples = scaling · z)
    const z0 = got.get('add_noise/original_samples')!.map((v) => v / model.model.config.vae.scalingFactor);
    const roundTrip = toUnit(await model.pipeline.vaeDecoder.decode(z0, 1, 16, 16));
    const posterior = await model.pipeline.vaeEncoder.encode(imageToTensor(r.image!), 1, 64, 64);
    assert.equal(posterior.mean.length, 4 * 16 * 16);
    const near = meanAbs(out.imagesFloat, roundTrip);
    const shifted = roundTrip.map((_, i) => roundTrip[(i + 4099) % roundTrip.length]);
    const far = meanAbs(roundTrip, shifted);
    assert.ok(near < 0.25 * far, `img2img at strength 0.1 vs encode→decode: mean abs ${near} (a shifted image: ${far})`);
    const strong = await runPipeline(model.pipeline, { ...r, strength: 0.9 });
    const farther = meanAbs(strong.imagesFloat, roundTrip);
    assert.ok(farther > 2 * near, `strength 0.9 moves further from the input (${farther}) than 0.1 (${near})`);
  });

  test('tiled decoding in the pipeline uses the factor too (tiles of 8×8 latent cells = 32×32 px)', async () => {
    const r = { ...(await baseRequest()), task: 'text-to-image' as const, image: undefined, strength: 1, steps: 2 };
    const whole = await runPipeline(model.pipeline, r, {}, { vaeTiling: 'off' });
    const tiled = await runPipeline(model.pipeline, r, {}, { vaeTiling: 'on', vaeTiles: { tile: 8, overlap: 2 } });
    assert.equal(tiled.imagesFloat.length, 3 * 64 * 64);
    const diff = meanAbs(whole.imagesFloat, tiled.imagesFloat);
    assert.ok(diff > 0 && diff < 0.05, `tiled vs untiled mean abs ${diff}`);
  });

  test('a size that is not a multiple of the factor is refused with INVALID_INPUT naming the side and the multiple', async () => {
    const r = { ...(await baseRequest()), task: 'text-to-image' as const, image: undefined, width: 62, height: 64 };
    await assert.rejects(runPipeline(model.pipeline, r), (e: Error & { code?: string; field?: string }) => {
      assert.equal(e.code, 'INVALID_INPUT');
      assert.equal(e.field, 'width');
      assert.match(e.message, /width 62 must be a positive multiple of 4/);
      return true;
    });
  });
});

test('checkSize names every side that is not a multiple of the factor', () => {
  assert.doesNotThrow(() => checkSize(1024, 768, 8));
  assert.throws(() => checkSize(1020, 768, 8), /width 1020 must be a positive multiple of 8/);
  assert.throws(() => checkSize(1020, 770, 8), (e: Error & { code?: string; field?: string }) => e.code === 'INVALID_INPUT' && e.field === 'width' && /width 1020 and height 770/.test(e.message));
  assert.throws(() => checkSize(64, 40, 16), /height 40 must be a positive multiple of 16/);
});

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { openTestModel } from '../engine/test-support.ts';
import type { LoadedModel } from '../engine/model-manager.ts';
import { TorchGenerator } from '../sampling/rng.ts';
import { decodeTiled, tileStarts } from './vae-tiling.ts';

test('tile starts cover the latent with at least the overlap', () => {
  assert.deepEqual(tileStarts(40, 64, 16), [0]);
  assert.deepEqual(tileStarts(64, 64, 16), [0]);
  assert.deepEqual(tileStarts(128, 64, 16), [0, 48, 64]);
  assert.deepEqual(tileStarts(100, 64, 16), [0, 36]);
});

/** a "decoder" without spatial context: nearest f× upsampling of channels 0–2; tiling must not change it at all */
function pointwise(f: number) {
  return async (z: Float32Array, th: number, tw: number): Promise<Float32Array> => {
    const H = th * f;
    const W = tw * f;
    const out = new Float32Array(3 * H * W);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out[c * H * W + y * W + x] = z[c * th * tw + Math.floor(y / f) * tw + Math.floor(x / f)];
    }
    return out;
  };
}

for (const f of [8, 4]) {
  test(`blending reproduces a context-free decoder exactly, including uneven last tiles (scale factor ${f})`, async () => {
    const [c, h, w] = [4, 37, 29];
    const z = new TorchGenerator(3).randn(c * h * w);
    const whole = await pointwise(f)(z, h, w);
    const tiled = await decodeTiled(z, c, h, w, f, pointwise(f), { tile: 16, overlap: 4 });
    assert.equal(tiled.length, 3 * h * f * w * f);
    let err = 0;
    for (let i = 0; i < whole.length; i++) err = Math.max(err, Math.abs(whole[i] - tiled[i]));
    assert.ok(err < 1e-6, `max err ${err}`);
  });
}

test('a decoder whose output does not match the scale factor is refused, not read out of bounds', async () => {
  const z = new Float32Array(4 * 20 * 20);
  await assert.rejects(decodeTiled(z, 4, 20, 20, 8, pointwise(4), { tile: 16, overlap: 4 }), /scale factor 8/);
});

let model: LoadedModel;
before(async () => {
  model = await openTestModel(path.join(oracleDir(), 'tiny-sdxl'), fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-tile-')));
});
after(async () => model?.release());

test('tiled decode of the real VAE stays close to the untiled decode', async () => {
  const [c, h, w] = [4, 40, 32];
  const z = new TorchGenerator(5).randn(c * h * w);
  const dec = model.pipeline.vaeDecoder;
  const whole = await dec.decode(z, 1, h, w);
  const same = await decodeTiled(z, c, h, w, model.pipeline.vaeScaleFactor, (t, th, tw) => dec.decode(t, 1, th, tw), { tile: 64, overlap: 16 });
  assert.deepEqual(Array.from(same), Array.from(whole), 'one tile covering everything equals the plain decode');
  const tiled = await decodeTiled(z, c, h, w, model.pipeline.vaeScaleFactor, (t, th, tw) => dec.decode(t, 1, th, tw), { tile: 16, overlap: 6 });
  let sum = 0;
  let range = 0;
  for (let i = 0; i < whole.length; i++) {
    sum += Math.abs(whole[i] - tiled[i]);
    range = Math.max(range, Math.abs(whole[i]));
  }
  const mean = sum / whole.length;
  assert.ok(mean < 0.05 * range, `mean abs difference ${mean} vs output range ${range}`);
});

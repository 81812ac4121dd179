import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { openModel, type LoadedModel } from '../engine/model-manager.ts';
import { TorchGenerator } from '../sampling/rng.ts';
import { decodeTiled, tileStarts } from './vae-tiling.ts';

test('tile starts cover the latent with at least the overlap', () => {
  assert.deepEqual(tileStarts(40, 64, 16), [0]);
  assert.deepEqual(tileStarts(64, 64, 16), [0]);
  assert.deepEqual(tileStarts(128, 64, 16), [0, 48, 64]);
  assert.deepEqual(tileStarts(100, 64, 16), [0, 36]);
});

/** a "decoder" without spatial context: nearest 8× upsampling of channels 0–2; tiling must not change it at all */
async function pointwise(z: Float32Array, th: number, tw: number): Promise<Float32Array> {
  const H = th * 8;
  const W = tw * 8;
  const out = new Float32Array(3 * H * W);
  for (let c = 0; c < 3; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out[c * H * W + y * W + x] = z[c * th * tw + (y >> 3) * tw + (x >> 3)];
  return out;
}

test('blending reproduces a context-free decoder exactly, including uneven last tiles', async () => {
  const [c, h, w] = [4, 37, 29];
  const z = new TorchGenerator(3).randn(c * h * w);
  const whole = await pointwise(z, h, w);
  const tiled = await decodeTiled(z, c, h, w, pointwise, { tile: 16, overlap: 4 });
  let err = 0;
  for (let i = 0; i < whole.length; i++) err = Math.max(err, Math.abs(whole[i] - tiled[i]));
  assert.ok(err < 1e-6, `max err ${err}`);
});

let model: LoadedModel;
before(async () => {
  model = await openModel('tiny', path.join(oracleDir(), 'tiny-sdxl'), { cacheDir: fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-tile-')), settings: { threads: 2 } });
});
after(async () => model?.release());

test('tiled decode of the real VAE stays close to the untiled decode', async () => {
  const [c, h, w] = [4, 40, 32];
  const z = new TorchGenerator(5).randn(c * h * w);
  const dec = model.pipeline.vaeDecoder;
  const whole = await dec.decode(z, 1, h, w);
  const same = await decodeTiled(z, c, h, w, (t, th, tw) => dec.decode(t, 1, th, tw), { tile: 64, overlap: 16 });
  assert.deepEqual(Array.from(same), Array.from(whole), 'one tile covering everything equals the plain decode');
  const tiled = await decodeTiled(z, c, h, w, (t, th, tw) => dec.decode(t, 1, th, tw), { tile: 16, overlap: 6 });
  let sum = 0;
  let range = 0;
  for (let i = 0; i < whole.length; i++) {
    sum += Math.abs(whole[i] - tiled[i]);
    range = Math.max(range, Math.abs(whole[i]));
  }
  const mean = sum / whole.length;
  assert.ok(mean < 0.05 * range, `mean abs difference ${mean} vs output range ${range}`);
});

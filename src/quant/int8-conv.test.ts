import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { oracleDir } from '../paths.ts';
import { loadModel } from '../weights/load-model.ts';
import { GraphBuilder } from '../onnx/graph.ts';
import { Session } from '../onnx/session.ts';
import { TorchGenerator } from '../sampling/rng.ts';
import { oracleF32 } from '../networks/test-support.ts';
import { VaeDecoder } from '../networks/vae.ts';
import { decoderCalibrationInputs } from '../engine/calibration-inputs.ts';
import { quantisableDecoderConvs } from './quantisable-convs.ts';
import { decoderInt8Convs } from './vae-calibration.ts';
import { calibrationFile } from './calibration-cache.ts';
import { MIN_SNR_DB } from './calibrate.ts';
import { mergeStats } from './conv-stats.ts';
import { int8Conv, int8ConvLayers, MARGIN, outputQuantization, type Int8Conv } from './int8-conv.ts';
import { quantizeInt8PerRow } from './quantizers.ts';
import { snrDb } from './snr.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-vae-int8-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('output quantisation from calibrated ranges', () => {
  test('the range is widened about its centre by the margin, 0 kept inside', () => {
    assert.equal(MARGIN, 1.5);
    // [−1, 3]: centre 1, half 2 → ±3 → [−2, 4]: width 6, zero at 2/6 of 255
    assert.deepEqual(outputQuantization({ lo: -1, hi: 3 }), { outScalePerInScale: 6, outZeroPoint: 85 });
    // all-positive [1, 2] widened to [0.75, 2.25] must still contain 0 → [0, 2.25]
    assert.deepEqual(outputQuantization({ lo: 1, hi: 2 }), { outScalePerInScale: 2.25, outZeroPoint: 0 });
    assert.deepEqual(outputQuantization({ lo: 0, hi: 0 }), { outScalePerInScale: 1, outZeroPoint: 0 });
  });

  test('ranges are ratios to the input range, widest over runs; unusable statistics are refused', () => {
    const m = mergeStats([{ a: { r: 2, lo: -1, hi: 4 } }, { a: { r: 4, lo: -8, hi: 4 } }]);
    assert.deepEqual(m.get('a'), { lo: -2, hi: 2 });
    assert.throws(() => mergeStats([{ a: { r: 0, lo: -1, hi: 1 } }]), /unusable statistics/);
    assert.throws(() => mergeStats([{ a: { r: 1, lo: NaN, hi: 1 } }]), /unusable statistics/);
  });

  test('snrDb: 10·log10(variance / mean squared error)', () => {
    const ref = Float32Array.from([1, -1, 1, -1]);
    assert.equal(snrDb(ref, ref), Infinity);
    assert.ok(Math.abs(snrDb(ref, Float32Array.from([1.1, -0.9, 1.1, -0.9])) - 20) < 1e-5);
  });
});

test('int8Conv (QLinearConv, run-time input scale) matches the fp32 convolution within 2 % rms', async () => {
  const [co, ci, h] = [16, 32, 12];
  const g0 = new TorchGenerator(5);
  const w = g0.randn(co * ci * 9).map((v) => v * 0.05);
  const bias = g0.randn(co).map((v) => v * 0.1);
  const x = g0.randn(ci * h * h).map((v) => v / (1 + Math.exp(-v))); // post-SiLU values
  const fp = new GraphBuilder('fp');
  const xin = fp.input('x', 'float32', [1, ci, h, h]);
  fp.output(fp.op('Conv', [xin, fp.constF32(w, [co, ci, 3, 3]), fp.constF32(bias, [co])], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }), 'y');
  // calibrate the output range on this input, then quantise
  const sFp = await Session.create(fp.build(tmp), { threads: 2 });
  const want = (await sFp.run({ x: { data: x, dims: [1, ci, h, h] } })).y.data as Float32Array;
  await sFp.release();
  let r = 0;
  let [lo, hi] = [0, 0];
  for (const v of x) r = Math.max(r, v);
  r -= Math.min(0, ...x);
  for (const v of want) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  const { q, scale } = quantizeInt8PerRow(w, co, ci * 9);
  const conv: Int8Conv = { shape: [co, ci, 3, 3], q, scale, bias, ...outputQuantization(mergeStats([{ m: { r, lo, hi } }]).get('m')!) };
  const qg = new GraphBuilder('q');
  qg.output(int8Conv(qg, qg.input('x', 'float32', [1, ci, h, h]), conv, 1), 'y');
  const sQ = await Session.create(qg.build(tmp), { threads: 2 });
  // the same input at twice the scale: the output quantisation follows the input's range
  for (const k of [1, 2]) {
    const got = (await sQ.run({ x: { data: x.map((v) => v * k), dims: [1, ci, h, h] } })).y.data as Float32Array;
    // conv(k·x) + b = k·(conv(x) + b) − (k − 1)·b
    const expected = want.map((v, i) => k * v - (k - 1) * bias[Math.floor(i / (h * h))]);
    const rel = Math.sqrt(expected.reduce((a, v, i) => a + (got[i] - v) ** 2, 0) / expected.reduce((a, v) => a + v * v, 0));
    assert.ok(rel < 0.02 && rel > 0, `input ×${k}: relative rms error ${rel}`);
  }
  await sQ.release();
});

describe('int8 VAE decoder on the oracle tiny model', () => {
  const cacheDir = path.join(tmp, 'cache');
  const source = path.join(oracleDir(), 'tiny-sdxl');

  test('calibrated once and cached; the decoded trace image stays close to diffusers, not identical', async (t) => {
    const model = await loadModel(source, { cacheDir });
    const first = await decoderInt8Convs(model, decoderCalibrationInputs(model.config.vae), { cacheDir, settings: { threads: 2 } });
    assert.equal(first.calibrated, true);
    assert.deepEqual([...first.keys()].sort(), quantisableDecoderConvs(model.weights.vae).sort());
    assert.equal(first.size, 20, 'conv1 and conv2 of the tiny decoder\'s 10 resnets (2 per up block, 2 in the mid block)');
    assert.ok(first.calibration.snrDb >= MIN_SNR_DB, `calibration SNR ${first.calibration.snrDb}`);
    const file = calibrationFile(cacheDir, model.fingerprint, 'vae_decoder');
    assert.ok(fs.existsSync(file));
    const second = await decoderInt8Convs(model, decoderCalibrationInputs(model.config.vae), { cacheDir, settings: { threads: 2 } });
    assert.equal(second.calibrated, false, 'read from the cache');
    assert.deepEqual(second.calibration, first.calibration);

    const z = oracleF32('vae/decode_input', 'img2img_trace');
    const want = oracleF32('vae/decode_output', 'img2img_trace').data;
    const [, , h, w] = z.shape;
    const dec = await VaeDecoder.create(model, { threads: 2, optimization: 'all' }, int8ConvLayers(second));
    const got = await dec.decode(z.data, 1, h, w);
    await dec.release();
    const snr = snrDb(want, got);
    let levels = 0;
    const q = (v: number) => Math.round((Math.min(1, Math.max(-1, v)) + 1) * 127.5);
    for (let i = 0; i < want.length; i++) levels += Math.abs(q(want[i]) - q(got[i]));
    t.diagnostic(`int8 decode of the img2img trace vs diffusers: SNR ${snr.toFixed(1)} dB, mean ${(levels / want.length).toFixed(2)} 8-bit levels`);
    assert.ok(snr >= MIN_SNR_DB && Number.isFinite(snr), `SNR ${snr} dB`);
    assert.ok(levels / want.length < 4, `mean 8-bit difference ${levels / want.length}`);
  });

  test('a stale calibration is redone; a checkpoint below the SNR floor is refused naming the setting', async () => {
    const model = await loadModel(source, { cacheDir });
    const file = calibrationFile(cacheDir, model.fingerprint, 'vae_decoder');
    await decoderInt8Convs(model, decoderCalibrationInputs(model.config.vae), { cacheDir, settings: { threads: 2 } });
    const stored = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...stored, version: 0 }));
    assert.equal((await decoderInt8Convs(model, decoderCalibrationInputs(model.config.vae), { cacheDir, settings: { threads: 2 } })).calibrated, true);
    fs.writeFileSync(file, '{ not json');
    assert.equal((await decoderInt8Convs(model, decoderCalibrationInputs(model.config.vae), { cacheDir, settings: { threads: 2 } })).calibrated, true);
    await assert.rejects(decoderInt8Convs(model, decoderCalibrationInputs(model.config.vae), { cacheDir, minSnrDb: 99 }), (e: Error & { code?: string; field?: string }) => {
      assert.equal(e.code, 'BAD_REQUEST');
      assert.equal(e.field, 'vae-quantize');
      assert.match(e.message, /--vae-quantize.*SNR \d+\.\d dB.*minimum 99 dB.*"off"/);
      return true;
    });
  });
});

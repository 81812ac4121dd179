import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GraphBuilder } from '../onnx/graph.ts';
import { oracleDir } from '../paths.ts';
import { loadModel } from '../weights/load-model.ts';
import { readSafetensorsHeader, tensorRefOf, writeSafetensors } from '../weights/safetensors.ts';
import type { SdxlModel, TensorRef } from '../weights/types.ts';
import { LINEAR_QUANT_SCHEMES as QUANT_SCHEMES } from '../contract/tables.ts';
import { linear, newContext } from '../networks/blocks.ts';
import { NetworkSession, weightsFolder } from '../networks/runtime.ts';
import { oracleF32 } from '../networks/test-support.ts';
import { buildUNetGraph } from '../networks/unet.ts';
import { dequantizeBlockwise, dequantizeInt8PerColumn, quantizeBlockwise, quantizeInt8PerColumn } from './quantizers.ts';
import { quantizedLinearLayers } from './quantized-linear.ts';
import { ensureQuantized, quantizeComponent, QuantizedWeights } from './quantized-weights.ts';

/** Deterministic test data (xorshift32), values in [−1, 1) times a per-row magnitude spread over 3 decades. */
function matrix(rows: number, cols: number, seed: number): Float32Array {
  let s = seed;
  const a = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const mag = 10 ** (-3 + (3 * r) / rows);
    for (let c = 0; c < cols; c++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      a[r * cols + c] = (((s >>> 0) / 2147483648) - 1) * mag;
    }
  }
  return a;
}

describe('quantisers', () => {
  test('int8 per column: |w − dequant(w)| ≤ scale/2, layout [in, out]', () => {
    const [out, inF] = [37, 50];
    const w = matrix(out, inF, 7);
    const p = quantizeInt8PerColumn(w, out, inF);
    const back = dequantizeInt8PerColumn(p, out, inF);
    for (let n = 0; n < out; n++) {
      for (let k = 0; k < inF; k++) {
        const e = Math.abs(w[n * inF + k] - back[n * inF + k]);
        assert.ok(e <= p.scale[n] * 0.5 * (1 + 1e-6), `w[${n},${k}] error ${e} > scale/2 ${p.scale[n] / 2}`);
      }
      let m = 0;
      for (let k = 0; k < inF; k++) m = Math.max(m, Math.abs(p.q[k * out + n]));
      assert.equal(m, 127, `column ${n} uses the full int8 range`);
    }
  });

  for (const bits of [8, 4] as const) {
    test(`blockwise ${bits}-bit: |w − dequant(w)| ≤ block scale/2, partial last block`, () => {
      const [out, inF, block] = [9, 80, 32]; // 80 = 2 full blocks + a 16-wide partial one
      const w = matrix(out, inF, 11 + bits);
      const p = quantizeBlockwise(w, out, inF, bits, block);
      assert.equal(p.kBlocks, 3);
      assert.equal(p.packed.length, out * 3 * (block * bits) / 8);
      const back = dequantizeBlockwise(p, out, inF, bits, block);
      let worst = 0;
      for (let n = 0; n < out; n++) {
        for (let k = 0; k < inF; k++) {
          const scale: number = p.scales[n * p.kBlocks + Math.floor(k / block)];
          const e = Math.abs(w[n * inF + k] - back[n * inF + k]);
          worst = Math.max(worst, e / scale);
          assert.ok(e <= scale * 0.5 * (1 + 1e-6), `w[${n},${k}] error ${e} > scale/2`);
        }
      }
      console.log(`blockwise ${bits}-bit: worst error ${worst.toFixed(3)} × scale`);
    });
  }

  test('4-bit packing: even element in the low nibble, zero point 8', () => {
    const w = Float32Array.from({ length: 32 }, (_, i) => (i % 2 === 0 ? 7 : -7)); // scale 1 → q ±7
    const p = quantizeBlockwise(w, 1, 32, 4, 32);
    assert.equal(p.scales[0], 1);
    assert.equal(p.packed[0], 15 | (1 << 4)); // low nibble 7+8, high nibble −7+8
  });
});

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-quant-'));
after(() => fs.rmSync(TMP, { recursive: true, force: true }));

describe('quantised Linear through onnxruntime', () => {
  for (const scheme of QUANT_SCHEMES) {
    test(`${scheme}: one Linear matches x·Wᵀ + b within the quantisation error`, async () => {
      const [M, K, N] = [64, 200, 48];
      const src = path.join(TMP, `lin-${scheme}`, 'w.safetensors');
      fs.mkdirSync(path.dirname(src), { recursive: true });
      const wData = matrix(N, K, 3);
      const bData = matrix(1, N, 5);
      await writeSafetensors(src, [
        { name: 'attentions.0.lin.weight', dtype: 'F32', shape: [N, K], data: wData },
        { name: 'attentions.0.lin.bias', dtype: 'F32', shape: [N], data: bData },
      ]);
      const h = await readSafetensorsHeader(src);
      const weights = new Map<string, TensorRef>([...h.tensors.keys()].map((k) => [k, tensorRefOf(h, k)]));
      const q = await ensureQuantized(weights, { scheme, cacheDir: path.join(TMP, 'cache'), fingerprint: `lin${scheme}`, source: src, component: 'test' });
      assert.ok(q instanceof QuantizedWeights && q.created);
      assert.equal(q.get('attentions.0.lin.weight')?.dtype, scheme === 'int8' ? 'I8' : 'U8');
      const g = new GraphBuilder('lin');
      assert.equal(q.scheme, scheme);
      const ctx = newContext(g, q, 'test', false, quantizedLinearLayers(q));
      g.output(linear(ctx, g.input('x', 'float32', ['m', K]), 'attentions.0.lin'), 'y');
      const op = scheme === 'int8' ? 'DynamicQuantizeMatMul' : 'MatMulNBits';
      assert.ok(new TextDecoder('latin1').decode(g.build(weightsFolder(q, 'test'))).includes(op), `the graph runs ${op}`);
      const s = await NetworkSession.create({ graph: g, weights: q, loraSlots: [], label: 'lin' }, { threads: 2 });
      const x = matrix(M, K, 9).map((v) => v * 1000);
      const y = (await s.run({ x: { data: x, dims: [M, K] } })).y.data as Float32Array;
      await s.release();
      let num = 0;
      let den = 0;
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          let ref = bData[n];
          for (let k = 0; k < K; k++) ref += x[m * K + k] * wData[n * K + k];
          num += (y[m * N + n] - ref) ** 2;
          den += ref ** 2;
        }
      }
      const rel = Math.sqrt(num / den);
      console.log(`${scheme} Linear [${M}×${K}]·[${K}×${N}]: relative error ${rel.toExponential(2)}`);
      assert.ok(rel < 2e-2, `${scheme}: relative error ${rel}`);
      const again = await ensureQuantized(weights, { scheme, cacheDir: path.join(TMP, 'cache'), fingerprint: `lin${scheme}`, source: src, component: 'test' });
      assert.equal(again.created, false, 'second call reuses the cache');
    });
  }
});

describe('quantised tiny UNet vs fp32', () => {
  let model: SdxlModel;
  before(async () => {
    model = await loadModel(path.join(oracleDir(), 'tiny-sdxl'), { cacheDir: path.join(TMP, 'fp32') });
  });

  for (const scheme of QUANT_SCHEMES) {
    test(`${scheme}: noise_pred close to the diffusers output`, async () => {
      const qw = await quantizeComponent(model, 'unet', { scheme, cacheDir: path.join(TMP, 'unet-cache') });
      const quantised = [...qw.quant.keys()].filter((k) => !k.endsWith('_scale')).length;
      assert.ok(quantised > 0);
      const built = buildUNetGraph({ config: model.config, weights: { ...model.weights, unet: qw } }, { layers: quantizedLinearLayers(qw) });
      const unet = await NetworkSession.create(built, { threads: 2 });
      const sample = oracleF32('unet/8x8/sample');
      const ehs = oracleF32('unet/8x8/encoder_hidden_states');
      const t = oracleF32('unet/8x8/timestep').data[0];
      const out = await unet.run({
        sample: { data: sample.data, dims: sample.shape },
        timestep: { data: new Float32Array([t, t]), dims: [2] },
        encoder_hidden_states: { data: ehs.data, dims: ehs.shape },
        text_embeds: { data: oracleF32('unet/8x8/text_embeds').data, dims: oracleF32('unet/8x8/text_embeds').shape },
        time_ids: { data: oracleF32('unet/8x8/time_ids').data, dims: oracleF32('unet/8x8/time_ids').shape },
      });
      await unet.release();
      const y = out.noise_pred.data as Float32Array;
      const ref = oracleF32('unet/8x8/out').data;
      let mean = 0;
      for (const v of ref) mean += v;
      mean /= ref.length;
      let v2 = 0;
      let maxE = 0;
      let e2 = 0;
      for (let i = 0; i < ref.length; i++) {
        v2 += (ref[i] - mean) ** 2;
        maxE = Math.max(maxE, Math.abs(y[i] - ref[i]));
        e2 += (y[i] - ref[i]) ** 2;
      }
      const std = Math.sqrt(v2 / ref.length);
      const relRms = Math.sqrt(e2 / ref.length) / std;
      console.log(`tiny UNet ${scheme} (${quantised} Linear weights quantised): max abs error ${maxE.toExponential(2)} = ${(maxE / std).toExponential(2)} × output std; rms error ${relRms.toExponential(2)} × std`);
      assert.ok(maxE / std < 0.1, `${scheme}: max abs error ${maxE} vs output std ${std}`);
    });
  }

  test('UNet default (no quantisation) builds no quantised op', () => {
    const built = buildUNetGraph(model);
    const bytes = new TextDecoder('latin1').decode(built.graph.build(weightsFolder(built.weights, 'unet')));
    assert.ok(!bytes.includes('DynamicQuantizeMatMul') && !bytes.includes('MatMulNBits'));
  });
});

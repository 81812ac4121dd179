import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyCfg, applyCfgToBatch, rescaleNoiseCfg } from './guidance.ts';
import { TorchGenerator } from './rng.ts';
import { loadTrace } from './test-fixtures.ts';

test('applyCfg reproduces every recorded noise_pred_guided bit for bit (guidance 5, [uncond, cond])', () => {
  for (const name of ['txt2img_trace', 'img2img_trace', 'sampler_heun_txt2img_trace']) {
    const tr = loadTrace(name);
    for (let k = 0; tr.has(`step${String(k).padStart(2, '0')}/noise_pred_raw`); k++) {
      const p = `step${String(k).padStart(2, '0')}/`;
      const raw = tr.get(p + 'noise_pred_raw') as Float32Array;
      const { guided, cond } = applyCfgToBatch(raw, tr.json.guidance_scale);
      assert.deepEqual(guided, tr.get(p + 'noise_pred_guided'), `${name} ${p}`);
      assert.deepEqual(cond, raw.subarray(raw.length / 2));
      assert.deepEqual(applyCfg(raw.subarray(0, raw.length / 2), cond, tr.json.guidance_scale), guided);
    }
  }
});

function stdOf(x: Float32Array): number {
  const m = x.reduce((a, v) => a + v, 0) / x.length;
  return Math.sqrt(x.reduce((a, v) => a + (v - m) ** 2, 0) / (x.length - 1));
}

test('rescaleNoiseCfg: φ = 0 is the identity, φ = 1 gives each sample the std of its cond prediction', () => {
  const g = new TorchGenerator(3);
  const per = 256;
  const cond = g.randn(2 * per);
  const guided = g.randn(2 * per).map((v, i) => v * (i < per ? 3 : 0.5) + 0.2); // different stds per sample
  assert.equal(rescaleNoiseCfg(guided, cond, 0, 2), guided);
  const full = rescaleNoiseCfg(guided, cond, 1, 2);
  for (let b = 0; b < 2; b++) {
    const s = full.subarray(b * per, (b + 1) * per);
    const c = cond.subarray(b * per, (b + 1) * per);
    assert.ok(Math.abs(stdOf(s) / stdOf(c) - 1) < 1e-6, `sample ${b}: std ${stdOf(s)} vs ${stdOf(c)}`);
    // a pure rescale: the direction is unchanged
    const ratio = s[0] / guided[b * per];
    for (let i = 0; i < per; i++) assert.ok(Math.abs(s[i] - guided[b * per + i] * ratio) < 1e-5);
  }
  // φ = 0.7 blends the two
  const part = rescaleNoiseCfg(guided, cond, 0.7, 2);
  for (let i = 0; i < guided.length; i++) {
    assert.ok(Math.abs(part[i] - (0.7 * full[i] + 0.3 * guided[i])) < 1e-5);
  }
  assert.throws(() => rescaleNoiseCfg(guided, cond.subarray(1), 0.5, 2), /rescale/);
});

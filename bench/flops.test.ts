import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FULL_CONFIGS, TINY_CONFIGS, unetTensors } from '../src/weights/test-model-spec.ts';
import { childArgs, parseBenchArgs } from './args.ts';
import { unetFlops } from './flops.ts';

const matrixParams = (cfg: typeof FULL_CONFIGS.unet) =>
  unetTensors(cfg)
    .filter((t) => t.shape.length >= 2)
    .reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);

test('the FLOP walk visits every Conv/Linear weight of the UNet exactly once', () => {
  for (const cfg of [FULL_CONFIGS.unet, TINY_CONFIGS.unet]) {
    assert.equal(unetFlops(cfg, { batch: 1, height: 8, width: 8, seq: 77 }).matrixParams, matrixParams(cfg));
  }
  assert.equal(matrixParams(FULL_CONFIGS.unet), 2_565_880_320);
});

test('SDXL base UNet FLOPs: linear in batch, 3.18 TFLOP for a CFG call at 64×64 latents', () => {
  const one = unetFlops(FULL_CONFIGS.unet, { batch: 1, height: 64, width: 64, seq: 77 });
  const two = unetFlops(FULL_CONFIGS.unet, { batch: 2, height: 64, width: 64, seq: 77 });
  assert.equal(two.flops, 2 * one.flops);
  assert.ok(Math.abs(two.flops / 1e12 - 3.1776) < 1e-3, `${two.flops}`);
  // 1024²: 4× the pixels, and self-attention grows quadratically
  const big = unetFlops(FULL_CONFIGS.unet, { batch: 2, height: 128, width: 128, seq: 77 });
  assert.ok(big.flops > 4 * two.flops && big.attentionFlops > 8 * two.attentionFlops);
});

test('bench flags: --quick drops the 1024² part; children get the same settings', () => {
  const o = parseBenchArgs(['--quick', '--only', 'unet,1024,vae', '--threads', '2', '--prepacking', 'off', '--optimization', 'extended']);
  assert.deepEqual([...o.parts], ['unet', 'vae']);
  assert.equal(o.prepacking, false);
  const again = parseBenchArgs(childArgs(o));
  assert.deepEqual([...again.parts], ['unet', 'vae']);
  assert.equal(again.optimization, 'extended');
  assert.equal(again.prepacking, false);
  assert.throws(() => parseBenchArgs(['--only', 'nope']), /unknown part "nope"/);
  assert.throws(() => parseBenchArgs(['--prepacking', 'maybe']), /--prepacking: "maybe" is not valid; expected one of on, off/);
  const engine = parseBenchArgs(childArgs(parseBenchArgs(['--device', 'cuda', '--threads', '1']))).engine;
  assert.deepEqual([engine.device, engine.threads, engine.models[0]!.name], ['cuda', 1, 'bench']);
});

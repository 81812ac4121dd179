import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { LoraSlot } from '../src/networks/blocks.ts';
import { FULL_CONFIGS } from '../src/weights/test-model-spec.ts';
import { readSafetensorsHeader, readTensorF32, tensorRefOf } from '../src/weights/safetensors.ts';
import { measureGemm } from './gemm.ts';
import { unetInputs } from './inputs.ts';
import { ensureRandomLora } from './lora-file.ts';
import { uniform, uniform01, uniformFill, xorshift32 } from './random.ts';

test('xorshift32: Marsaglia\'s sequence, seed 0 treated as 1, uniform ranges', () => {
  const next = xorshift32(1);
  assert.deepEqual([next(), next(), next()], [270369, 67634689, 2647435461]);
  assert.deepEqual(Array.from(uniform(5, 0)), Array.from(uniform(5, 1)));
  const u = uniform(10000, 3, 2);
  assert.ok(u.every((v) => v >= -2 && v < 2));
  const mean = u.reduce((a, b) => a + b, 0) / u.length;
  assert.ok(Math.abs(mean) < 0.05, `mean ${mean}`);
  const r = uniform01(3);
  const first = r();
  assert.ok(first >= 0 && first < 1);
  assert.equal(Math.fround(first * 2 * 2 - 2), uniform(1, 3, 2)[0], 'one stream: uniform01 and uniform agree');
  const a = new Float32Array(4);
  assert.equal(uniformFill(a, 9, 0.5), a);
  assert.deepEqual(Array.from(a), Array.from(uniform(4, 9, 0.5)));
});

test('unetInputs: the SDXL CFG feeds every bench uses (shapes, seeds, size time ids)', () => {
  const c = FULL_CONFIGS.unet;
  const x = unetInputs(c, 16, 12);
  assert.equal(x.sample.length, 2 * 4 * 16 * 12);
  assert.equal(x.encoderHiddenStates.length, 2 * 77 * 2048);
  assert.equal(x.textEmbeds.length, 2 * 1280);
  assert.deepEqual(Array.from(x.timeIds), [128, 96, 0, 0, 128, 96, 128, 96, 0, 0, 128, 96]);
  assert.deepEqual(Array.from(x.sample), Array.from(uniform(x.sample.length, 7)));
  assert.deepEqual(Array.from(unetInputs(c, 16, 12, 1, 4).timeIds), [64, 48, 0, 0, 64, 48]);
});

test('the bench helpers that draw from the shared generator run: a tiny GEMM and a tiny LoRA file', async () => {
  const g = await measureGemm({ threads: 1 }, { m: 8, k: 16, n: 8, runs: 1 });
  assert.ok(g.gflops > 0 && Number.isFinite(g.fusedTransBGflops));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-bench-'));
  try {
    const file = path.join(dir, 'lora.safetensors');
    const slot: LoraSlot = { kind: 'linear', module: 'down_blocks.1.attentions.0.proj_in', inFeatures: 8, outFeatures: 6, kernel: [1, 1], downInput: 'd', upInput: 'u' };
    const r = await ensureRandomLora(file, [slot], (m) => m, 2);
    assert.deepEqual([r.modules, r.params, r.written], [1, 2 * (8 + 6), true]);
    const h = await readSafetensorsHeader(file);
    const down = [...h.tensors.keys()].find((k) => k.endsWith('lora_down.weight'))!;
    const v = await readTensorF32(tensorRefOf(h, down));
    const scale = Math.sqrt(3 / 8);
    assert.ok(v.every((x) => Math.abs(x) <= scale * 1.001) && v.some((x) => x !== 0));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

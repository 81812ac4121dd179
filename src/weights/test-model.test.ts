import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { COMPONENTS, loadModel } from './load-model.ts';
import { readTensorCanonical, readTensorF32 } from './safetensors.ts';
import { f16ToF32, f32ToF16 } from './fp16.ts';
import { fillApproxNormal, makeTestModel, tensorSeed } from './test-model.ts';
import { modelTensors, TINY_CONFIGS } from './test-model-spec.ts';

async function tmp(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'atelier-tm-'));
}

test('tiny spec has the oracle tiny-sdxl names and shapes (vocabulary aside)', async () => {
  const oracle = await loadModel(path.join(oracleDir(), 'tiny-sdxl'), { cacheDir: os.tmpdir() });
  const cfg = structuredClone(TINY_CONFIGS);
  cfg.textEncoder1.vocabSize = cfg.textEncoder2.vocabSize = 814;
  const specs = modelTensors(cfg);
  for (const c of COMPONENTS) {
    assert.equal(specs[c].length, oracle.weights[c].size, c);
    for (const s of specs[c]) assert.deepEqual(oracle.weights[c].get(s.name)?.shape, s.shape, s.name);
  }
});

test('tiny model in both layouts: same tensors bit for bit, intended configs, tokenizer files', async () => {
  const dir = await tmp();
  const folder = await makeTestModel({ outDir: path.join(dir, 'tiny'), layout: 'diffusers', seed: 3 });
  const file = await makeTestModel({ outDir: dir, layout: 'single-file', seed: 3 });
  assert.equal(file, path.join(dir, 'atelier-tiny-sdxl.safetensors'));
  const a = await loadModel(folder, { cacheDir: path.join(dir, 'cache') });
  const b = await loadModel(file, { cacheDir: path.join(dir, 'cache') });
  assert.deepEqual(a.config, TINY_CONFIGS);
  assert.deepEqual(b.config, TINY_CONFIGS);
  for (const c of COMPONENTS) {
    assert.deepEqual([...b.weights[c].keys()].sort(), [...a.weights[c].keys()].sort());
    for (const [name, t] of a.weights[c]) {
      const [x, y] = [await readTensorCanonical(t), await readTensorCanonical(b.weights[c].get(name)!)];
      assert.ok(x.every((v, i) => v === y[i]), `${c} ${name}`);
      assert.ok(x.every(Number.isFinite));
    }
  }
  // init: norm weights 1, Linear weights ~ N(0, 1/fan_in)
  assert.ok((await readTensorF32(a.weights.unet.get('mid_block.resnets.0.norm1.weight')!)).every((v) => v === 1));
  const w = await readTensorF32(a.weights.textEncoder2.get('text_model.encoder.layers.0.mlp.fc2.weight')!); // [64, 256]
  const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
  assert.ok(Math.abs(std - 1 / 16) < 0.003, `std ${std}`);
  // tokenizer: the standard CLIP vocabulary
  assert.ok(a.tokenizers);
  const vocab = JSON.parse(await readFile(a.tokenizers.tokenizer1.vocabJson, 'utf8')) as Record<string, number>;
  assert.equal(Object.keys(vocab).length, 49408);
  assert.equal(vocab['!'], 0);
  assert.equal(vocab['!</w>'], 256);
  assert.equal(vocab['<|startoftext|>'], 49406);
  assert.equal(vocab['<|endoftext|>'], 49407);
  // well-known CLIP ids ("a photo of the" → 320 1125 539 518)
  assert.deepEqual(['a</w>', 'photo</w>', 'of</w>', 'the</w>'].map((t) => vocab[t]), [320, 1125, 539, 518]);
  const merges = (await readFile(a.tokenizers.tokenizer2.mergesTxt, 'utf8')).trim().split('\n');
  assert.equal(merges.length, 1 + 48894);
  assert.equal(merges[1], 'i n');
  assert.deepEqual(a.padTokens, { tokenizer1: '<|endoftext|>', tokenizer2: '!' });
  await rm(dir, { recursive: true });
});

test('same seed writes identical bytes; another seed differs', async () => {
  const dir = await tmp();
  const f1 = await makeTestModel({ outDir: path.join(dir, 'a.safetensors'), layout: 'single-file', seed: 11 });
  const f2 = await makeTestModel({ outDir: path.join(dir, 'b.safetensors'), layout: 'single-file', seed: 11 });
  const f3 = await makeTestModel({ outDir: path.join(dir, 'c.safetensors'), layout: 'single-file', seed: 12 });
  const [b1, b2, b3] = await Promise.all([f1, f2, f3].map((f) => readFile(f)));
  assert.ok(b1.equals(b2));
  assert.equal(b1.length, b3.length);
  assert.ok(!b1.equals(b3));
  await rm(dir, { recursive: true });
});

test('fp16 test model loads through the fp32 cache with the fp16-rounded values', async () => {
  const dir = await tmp();
  const f32 = await loadModel(await makeTestModel({ outDir: path.join(dir, 'f32'), layout: 'diffusers', seed: 5 }), { cacheDir: dir });
  const f16 = await loadModel(await makeTestModel({ outDir: path.join(dir, 'f16'), layout: 'diffusers', seed: 5, dtype: 'F16' }), { cacheDir: path.join(dir, 'cache') });
  const name = 'up_blocks.1.attentions.2.transformer_blocks.1.ff.net.0.proj.weight';
  assert.equal(f16.weights.unet.get(name)!.dtype, 'F32');
  assert.ok(f16.weights.unet.get(name)!.file.startsWith(path.join(dir, 'cache')));
  const exact = await readTensorF32(f32.weights.unet.get(name)!);
  assert.deepEqual(Array.from(await readTensorF32(f16.weights.unet.get(name)!)), Array.from(f16ToF32(f32ToF16(exact))));
  assert.deepEqual(f16.config, f32.config);
  await rm(dir, { recursive: true });
});

test('PRNG: deterministic, distinct per name and seed, roughly N(0, std²)', () => {
  assert.notEqual(tensorSeed(0, 'a.weight'), tensorSeed(0, 'b.weight'));
  assert.notEqual(tensorSeed(0, 'a.weight'), tensorSeed(1, 'a.weight'));
  assert.notEqual(tensorSeed(2 ** 32, 'a.weight'), tensorSeed(0, 'a.weight'));
  const x = fillApproxNormal(new Float32Array(100000), 42, 0.5);
  assert.deepEqual(x, fillApproxNormal(new Float32Array(100000), 42, 0.5));
  const mean = x.reduce((s, v) => s + v, 0) / x.length;
  const std = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length);
  assert.ok(Math.abs(mean) < 0.01 && Math.abs(std - 0.5) < 0.01, `${mean} ${std}`);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { componentRoot, COMPONENTS, loadModel } from './load-model.ts';
import { readSafetensorsHeader, readTensorCanonical, readTensorF32, readTensorRaw, tensorRefOf, writeSafetensors } from './safetensors.ts';
import { f16ToF32, f32ToF16 } from './fp16.ts';
import type { SdxlModel } from './types.ts';

const folder = path.join(oracleDir(), 'tiny-sdxl');
const single = path.join(oracleDir(), 'tiny-sdxl.safetensors');

async function tmp(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'atelier-load-'));
}

function assertRootsHoldFiles(m: SdxlModel): void {
  for (const c of COMPONENTS) {
    const root = componentRoot(m, c);
    for (const t of m.weights[c].values()) assert.ok(t.file.startsWith(root + path.sep), `${t.file} outside ${root}`);
  }
}

test('oracle folder and single file load to the same canonical tensors, bit for bit, and the same configs', async () => {
  const cacheDir = await tmp();
  const a = await loadModel(folder, { cacheDir });
  const b = await loadModel(single, { cacheDir });
  assert.equal(a.layout, 'diffusers');
  assert.equal(b.layout, 'single-file');
  const expectedCounts = { unet: 840, vae: 180, textEncoder1: 68, textEncoder2: 69 }; // position_ids dropped
  let compared = 0;
  for (const c of COMPONENTS) {
    assert.equal(a.weights[c].size, expectedCounts[c], c);
    assert.deepEqual([...b.weights[c].keys()].sort(), [...a.weights[c].keys()].sort(), c);
    for (const [name, ta] of a.weights[c]) {
      const tb = b.weights[c].get(name)!;
      assert.deepEqual(tb.shape, ta.shape, name);
      const [va, vb] = [await readTensorCanonical(ta), await readTensorCanonical(tb)];
      assert.ok(va.length === vb.length && va.every((v, i) => Object.is(v, vb[i])), `values differ: ${c} ${name}`);
      compared++;
    }
  }
  assert.equal(compared, 1157);
  assert.deepEqual(b.config, a.config);
  // the single file's oddities
  const qkv = b.weights.textEncoder2.get('text_model.encoder.layers.0.self_attn.k_proj.weight')!;
  assert.deepEqual(qkv.shape, [64, 64]);
  assert.equal(b.weights.textEncoder2.get('text_projection.weight')!.transposed, true);
  assert.deepEqual(b.weights.vae.get('encoder.mid_block.attentions.0.to_q.weight')!.shape, [64, 64]);
  assert.deepEqual(a.tokenizers?.tokenizer2.vocabJson, path.join(folder, 'tokenizer_2', 'vocab.json'));
  assert.equal(b.tokenizers, null);
  assert.deepEqual(a.padTokens, { tokenizer1: '<|endoftext|>', tokenizer2: '!' });
  assert.equal(componentRoot(a, 'unet'), folder);
  assert.equal(componentRoot(b, 'vae'), oracleDir());
  assertRootsHoldFiles(a);
  assertRootsHoldFiles(b);
  await rm(cacheDir, { recursive: true });
});

test('configs match the oracle config.json values', async () => {
  const m = await loadModel(single, { cacheDir: os.tmpdir() }); // no config.json: shape rules only
  assert.deepEqual(m.config.unet, {
    inChannels: 4, outChannels: 4, blockOutChannels: [16, 32, 64], layersPerBlock: 2, transformerLayersPerBlock: [0, 2, 3],
    midTransformerLayers: 3, numHeads: [0, 2, 4], crossAttentionDim: 96, normNumGroups: 8, normEps: 1e-5, timeEmbedDim: 64,
    addTimeEmbedDim: 8, projectionClassEmbeddingsInputDim: 112, useLinearProjection: true,
  });
  assert.deepEqual(m.config.vae, { inChannels: 3, latentChannels: 4, blockOutChannels: [32, 32, 64, 64], layersPerBlock: 1, normNumGroups: 8, scalingFactor: 0.13025 });
  assert.deepEqual(m.config.textEncoder1, { vocabSize: 814, hiddenSize: 32, intermediateSize: 128, numLayers: 4, numHeads: 4, maxPositions: 77, layerNormEps: 1e-5, act: 'quick_gelu' });
  assert.deepEqual(m.config.textEncoder2, { vocabSize: 814, hiddenSize: 64, intermediateSize: 256, numLayers: 4, numHeads: 4, maxPositions: 77, layerNormEps: 1e-5, act: 'gelu', projectionDim: 64 });
});

/** The oracle single file re-encoded as fp16 (position_ids stay int64). */
async function writeFp16Copy(file: string): Promise<void> {
  const h = await readSafetensorsHeader(single);
  await writeSafetensors(file, [...h.tensors].map(([name, e]) => ({
    name,
    dtype: e.dtype === 'F32' ? 'F16' as const : e.dtype,
    shape: e.shape,
    data: async () => {
      const ref = tensorRefOf(h, name);
      return e.dtype === 'F32' ? await readTensorF32(ref) : new Uint8Array(await readTensorRaw(ref));
    },
  })));
}

test('fp16 checkpoint: fp32 cache created once, reused, rebuilt when the source changes; values exact', async () => {
  const dir = await tmp();
  const cacheDir = path.join(dir, 'cache');
  const file = path.join(dir, 'half.safetensors');
  await writeFp16Copy(file);
  const m1 = await loadModel(file, { cacheDir });
  for (const c of COMPONENTS) {
    assert.equal(componentRoot(m1, c), path.join(cacheDir, m1.fingerprint));
    for (const t of m1.weights[c].values()) assert.equal(t.dtype, 'F32');
  }
  assertRootsHoldFiles(m1);
  const unetCache = path.join(cacheDir, m1.fingerprint, 'unet.safetensors');
  const mtime1 = (await stat(unetCache)).mtimeMs;
  // values equal the fp16 values exactly
  const h = await readSafetensorsHeader(file);
  const name = 'down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight';
  const half = await readTensorF32(tensorRefOf(h, `model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight`));
  assert.deepEqual(Array.from(await readTensorF32(m1.weights.unet.get(name)!)), Array.from(half));
  const orig = await readTensorF32(tensorRefOf(await readSafetensorsHeader(single), 'model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight'));
  assert.deepEqual(Array.from(half), Array.from(f16ToF32(f32ToF16(orig))));
  const proj = m1.weights.textEncoder2.get('text_projection.weight')!;
  assert.equal(proj.transposed, true);
  // second load reuses the cache (no rewrite)
  await new Promise((r) => setTimeout(r, 20));
  const m2 = await loadModel(file, { cacheDir });
  assert.equal(m2.fingerprint, m1.fingerprint);
  assert.equal((await stat(unetCache)).mtimeMs, mtime1);
  // touching the source rebuilds it under a new fingerprint and drops the stale folder
  const later = new Date(Date.now() + 5000);
  await utimes(file, later, later);
  const m3 = await loadModel(file, { cacheDir });
  assert.notEqual(m3.fingerprint, m1.fingerprint);
  await stat(path.join(cacheDir, m3.fingerprint, 'unet.safetensors'));
  await assert.rejects(stat(unetCache));
  await rm(dir, { recursive: true });
});

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { openTestModel } from '../engine/test-support.ts';
import { runPipeline } from '../pipeline/generate.ts';
import { requestFromTrace } from '../pipeline/trace-request.ts';
import { clipConfigFromShapes, unetConfigFromShapes } from './config-from-shapes.ts';
import { loadModel } from './load-model.ts';
import { makeTestModel } from './test-model.ts';
import { NONSTANDARD_CONFIGS } from './test-model-spec.ts';

const ODD = NONSTANDARD_CONFIGS; // widths the shape rules do not know, head counts they would guess wrong

let tmp: string;
let folder: string;
let single: string;
before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-cfgdir-'));
  folder = await makeTestModel({ outDir: path.join(tmp, 'odd'), layout: 'diffusers', seed: 11, configs: ODD });
  single = await makeTestModel({ outDir: path.join(tmp, 'odd.safetensors'), layout: 'single-file', seed: 11, configs: ODD });
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('the odd test model is one whose head counts the shape rules would guess wrong', async () => {
  const m = await loadModel(folder, { cacheDir: path.join(tmp, 'cache') });
  assert.deepEqual(m.config.unet.numHeads, [0, 2, 4]);
  assert.notDeepEqual(unetConfigFromShapes(m.weights.unet).numHeads, [0, 2, 4]);
  assert.notEqual(clipConfigFromShapes(m.weights.textEncoder1, { which: 1 }).numHeads, 2);
});

test('a single file with non-standard widths and no config is refused, saying what cannot be inferred and how to pass a config', async () => {
  await assert.rejects(loadModel(single, { cacheDir: path.join(tmp, 'cache') }), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'CHECKPOINT_INVALID');
    assert.match(e.message, /Cannot be inferred: for UNet block_out_channels \[32, 64, 128\], the attention head counts per level/);
    assert.match(e.message, /for text encoder 1 hidden_size \[48\], num_attention_heads/);
    assert.match(e.message, /for text encoder 2 hidden_size \[96\], num_attention_heads/);
    assert.doesNotMatch(e.message, /VAE block_out_channels/, 'the VAE has the tiny widths: not in question');
    assert.match(e.message, /--config DIR/);
    assert.match(e.message, /unet\/config\.json, vae\/config\.json, text_encoder\/config\.json and text_encoder_2\/config\.json/);
    return true;
  });
});

test('with the config folder it loads the configs of the diffusers-layout model and reproduces its outputs exactly', async () => {
  const cacheDir = path.join(tmp, 'cache');
  const a = await loadModel(folder, { cacheDir });
  const b = await loadModel(single, { cacheDir, config: folder });
  assert.deepEqual(b.config, a.config);
  assert.deepEqual(b.tokenizers, a.tokenizers, 'tokenizers from the config folder, as diffusers');
  assert.notEqual(b.fingerprint, (await loadModel(path.join(oracleDir(), 'tiny-sdxl.safetensors'), { cacheDir })).fingerprint);
  const { request } = await requestFromTrace(oracleDir(), 'img2img_trace');
  const r = { ...request, steps: 3 };
  const ma = await openTestModel(folder, cacheDir);
  const mb = await openTestModel({ path: single, config: folder }, cacheDir);
  try {
    const [oa, ob] = [await runPipeline(ma.pipeline, r), await runPipeline(mb.pipeline, r)];
    assert.deepEqual(Array.from(ob.imagesFloat), Array.from(oa.imagesFloat));
    const spread = Math.max(...oa.imagesFloat) - Math.min(...oa.imagesFloat);
    assert.ok(spread > 0.05, `a non-trivial image (${spread})`);
  } finally {
    await Promise.all([ma.release(), mb.release()]);
  }
});

test('a config folder that lacks a component config, or a config for a diffusers folder, is refused', async () => {
  const partial = path.join(tmp, 'partial');
  fs.mkdirSync(path.join(partial, 'unet'), { recursive: true });
  fs.copyFileSync(path.join(folder, 'unet', 'config.json'), path.join(partial, 'unet', 'config.json'));
  await assert.rejects(loadModel(single, { cacheDir: tmp, config: partial }), /lacks vae\/config\.json, text_encoder\/config\.json, text_encoder_2\/config\.json/);
  await assert.rejects(loadModel(single, { cacheDir: tmp, config: path.join(tmp, 'nowhere') }), /does not exist/);
  await assert.rejects(loadModel(folder, { cacheDir: tmp, config: folder }), /only for a single-file checkpoint/);
});

test('standard widths keep loading with no config: the oracle single file and the tiny test model', async () => {
  const m = await loadModel(path.join(oracleDir(), 'tiny-sdxl.safetensors'), { cacheDir: tmp });
  assert.deepEqual(m.config.unet.numHeads, [0, 2, 4]);
  const tiny = await makeTestModel({ outDir: path.join(tmp, 'tiny.safetensors'), layout: 'single-file', seed: 1 });
  assert.equal((await loadModel(tiny, { cacheDir: tmp })).config.textEncoder2.numHeads, 4);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { clipConfigFromShapes, unetConfigFromShapes, vaeConfigFromShapes } from './config-from-shapes.ts';
import { readDiffusersComponent, DIFFUSERS_PARTS } from './layouts/diffusers.ts';
import { FULL_CONFIGS, modelTensors, TINY_CONFIGS } from './test-model-spec.ts';
import type { TensorRef } from './types.ts';

/** Shape-only refs (no file) for a canonical tensor list. */
function fakeWeights(specs: { name: string; shape: number[] }[]): Map<string, TensorRef> {
  return new Map(specs.map((s) => [s.name, { file: '/nowhere', dtype: 'F32', shape: s.shape, byteOffset: 0, byteLength: 0 }]));
}

test('oracle diffusers configs: shapes + config.json give the config.json values', async () => {
  const root = path.join(oracleDir(), 'tiny-sdxl');
  const [unet, vae, te1, te2] = await Promise.all(DIFFUSERS_PARTS.map((p) => readDiffusersComponent(root, p)));
  const unetJson = JSON.parse(await readFile(path.join(root, 'unet', 'config.json'), 'utf8'));
  const u = unetConfigFromShapes(unet.weights, { config: unet.config });
  assert.deepEqual(u.blockOutChannels, unetJson.block_out_channels);
  assert.equal(u.crossAttentionDim, unetJson.cross_attention_dim);
  assert.equal(u.addTimeEmbedDim, unetJson.addition_time_embed_dim);
  assert.equal(u.projectionClassEmbeddingsInputDim, unetJson.projection_class_embeddings_input_dim);
  assert.equal(u.normNumGroups, unetJson.norm_num_groups);
  assert.deepEqual(u.numHeads, [0, 2, 4]); // attention_head_dim (1,2,4) = head counts; level 0 has no attention
  assert.deepEqual(u.transformerLayersPerBlock, [0, 2, 3]);
  assert.equal(u.midTransformerLayers, 3);
  assert.equal(u.timeEmbedDim, 64);
  const v = vaeConfigFromShapes(vae.weights, { config: vae.config });
  assert.deepEqual(v, { inChannels: 3, latentChannels: 4, blockOutChannels: [32, 32, 64, 64], layersPerBlock: 1, normNumGroups: 8, scalingFactor: 0.13025 });
  for (const [c, which] of [[te1, 1], [te2, 2]] as const) {
    const cfg = clipConfigFromShapes(c.weights, { config: c.config, which });
    const json = c.config!;
    assert.equal(cfg.hiddenSize, json.hidden_size);
    assert.equal(cfg.intermediateSize, json.intermediate_size);
    assert.equal(cfg.numLayers, json.num_hidden_layers);
    assert.equal(cfg.numHeads, json.num_attention_heads);
    assert.equal(cfg.vocabSize, json.vocab_size);
    assert.equal(cfg.maxPositions, json.max_position_embeddings);
    assert.equal(cfg.act, json.hidden_act);
    assert.equal(cfg.projectionDim, which === 2 ? json.projection_dim : undefined);
  }
});

test('shape rules alone recover the tiny and the full SDXL configs', () => {
  for (const cfg of [TINY_CONFIGS, FULL_CONFIGS]) {
    const t = modelTensors(cfg);
    const te2 = clipConfigFromShapes(fakeWeights(t.textEncoder2), { which: 2 });
    assert.deepEqual(te2, cfg.textEncoder2);
    assert.deepEqual(clipConfigFromShapes(fakeWeights(t.textEncoder1), { which: 1 }), cfg.textEncoder1);
    assert.deepEqual(unetConfigFromShapes(fakeWeights(t.unet), { pooledDim: te2.projectionDim }), cfg.unet);
    assert.deepEqual(vaeConfigFromShapes(fakeWeights(t.vae)), cfg.vae);
  }
});

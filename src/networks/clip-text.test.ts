import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { loadModel } from '../weights/load-model.ts';
import type { ClipTextConfig, SdxlModel } from '../weights/types.ts';
import { buildClipTextGraph, TextEncoder, type TextEncoderName } from './clip-text.ts';
import { maxAbsDiff, oracleF32, oracleFolderConfig, oracleFolderModel, oracleI64 } from './test-support.ts';

const TOL = 1e-4;
const SETTINGS = { threads: 2 };

function clipConfig(component: 'text_encoder' | 'text_encoder_2'): ClipTextConfig {
  const c = oracleFolderConfig(component);
  return {
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    maxPositions: c.max_position_embeddings,
    layerNormEps: c.layer_norm_eps,
    act: c.hidden_act,
    ...(component === 'text_encoder_2' ? { projectionDim: c.projection_dim } : {}),
  };
}

const folderModel = (): SdxlModel => oracleFolderModel({ textEncoder1: clipConfig('text_encoder'), textEncoder2: clipConfig('text_encoder_2') });

/** Both encoders on the recorded token ids of components.safetensors; asserts and logs the max abs errors. */
async function componentsParity(model: SdxlModel, layout: string): Promise<void> {
  const cases: [TextEncoderName, string, string, string][] = [
    ['textEncoder1', 'tokenizer', 'text_encoder', 'pooler_output'],
    ['textEncoder2', 'tokenizer_2', 'text_encoder_2', 'text_embeds'],
  ];
  for (const [which, tok, prefix, pooledName] of cases) {
    const ids = oracleI64(`${tok}/input_ids`);
    const enc = await TextEncoder.create(model, which, SETTINGS);
    try {
      const out = await enc.encode(ids.data, ids.shape[0]);
      const errs = {
        penultimate: maxAbsDiff(out.penultimate, oracleF32(`${prefix}/hidden_states_penultimate`).data),
        lastHidden: maxAbsDiff(out.lastHidden, oracleF32(`${prefix}/last_hidden_state`).data),
        pooled: maxAbsDiff(out.pooled, oracleF32(`${prefix}/${pooledName}`).data),
      };
      console.log(`# ${layout} ${prefix} max abs err: ${JSON.stringify(errs)}`);
      for (const [k, e] of Object.entries(errs)) assert.ok(e <= TOL, `${layout} ${prefix} ${k}: max abs error ${e}`);
    } finally {
      await enc.release();
    }
  }
}

test('text encoders match diffusers on components.safetensors (diffusers folder)', async () => {
  await componentsParity(folderModel(), 'folder');
});

test('text encoders match diffusers on components.safetensors (loadModel: folder and single file)', async () => {
  const cacheDir = mkdtempSync(path.join(os.tmpdir(), 'atelier-clip-'));
  try {
    const folder = await loadModel(path.join(oracleDir(), 'tiny-sdxl'), { cacheDir });
    await componentsParity(folder, 'loadModel(folder)');
    const single = await loadModel(path.join(oracleDir(), 'tiny-sdxl.safetensors'), { cacheDir });
    assert.equal(single.weights.textEncoder2.get('text_projection.weight')?.transposed, true);
    await componentsParity(single, 'loadModel(single-file)');
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});

test('textual-inversion tokens read extra_embeddings; pooled at the first largest id', async () => {
  const model = folderModel();
  const cases: [TextEncoderName, string, string, string][] = [
    ['textEncoder1', 'clip_l', 'text_encoder', 'pooler_output'],
    ['textEncoder2', 'clip_g', 'text_encoder_2', 'text_embeds'],
  ];
  for (const [which, tiName, prefix, pooledName] of cases) {
    const ids = oracleI64(`${prefix}/prompt/input_ids`, 'ti_txt2img_trace');
    assert.ok(ids.data.includes(814n) && ids.data.includes(815n), 'trace ids hold the two TI tokens');
    const enc = await TextEncoder.create(model, which, SETTINGS);
    try {
      const out = await enc.encode(ids.data, 1, { extraEmbeddings: oracleF32(tiName, 'ti/tiny_sdxl_ti').data });
      const errs = {
        penultimate: maxAbsDiff(out.penultimate, oracleF32(`${prefix}/prompt/hidden_states_penultimate`, 'ti_txt2img_trace').data),
        lastHidden: maxAbsDiff(out.lastHidden, oracleF32(`${prefix}/prompt/last_hidden_state`, 'ti_txt2img_trace').data),
        pooled: maxAbsDiff(out.pooled, oracleF32(`${prefix}/prompt/${pooledName}`, 'ti_txt2img_trace').data),
      };
      console.log(`# TI ${prefix} max abs err: ${JSON.stringify(errs)}`);
      for (const [k, e] of Object.entries(errs)) assert.ok(e <= TOL, `TI ${prefix} ${k}: max abs error ${e}`);
      await assert.rejects(enc.encode(ids.data, 1), { code: 'INVALID_INPUT' }, 'TI ids without their embedding rows are refused');
    } finally {
      await enc.release();
    }
  }
});

test('LoRA slots on q/k/v/out_proj/fc1/fc2 of every layer; an adapter on the last layer leaves the penultimate alone', async () => {
  const model = folderModel();
  for (const which of ['textEncoder1', 'textEncoder2'] as const) {
    const cfg = model.config[which];
    const built = buildClipTextGraph(model, which, { lora: true });
    const expected: string[] = [];
    for (let i = 0; i < cfg.numLayers; i++) {
      for (const m of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.out_proj', 'mlp.fc1', 'mlp.fc2']) {
        expected.push(`text_model.encoder.layers.${i}.${m}`);
      }
    }
    assert.deepEqual(built.loraSlots.map((s) => s.module).sort(), expected.sort());
    assert.equal(buildClipTextGraph(model, which).loraSlots.length, 0);
  }
  const enc = await TextEncoder.create(model, 'textEncoder1', { ...SETTINGS, lora: true });
  try {
    const ids = oracleI64('tokenizer/input_ids');
    const plain = await enc.encode(ids.data, 3);
    assert.ok(maxAbsDiff(plain.penultimate, oracleF32('text_encoder/hidden_states_penultimate').data) <= TOL);
    const slot = enc.loraSlots.find((s) => s.module === 'text_model.encoder.layers.3.mlp.fc2')!;
    const r = 2;
    const down = Float32Array.from({ length: r * slot.inFeatures }, (_, i) => Math.sin(i) * 0.1);
    const up = Float32Array.from({ length: slot.outFeatures * r }, (_, i) => Math.cos(i) * 0.1);
    const adapted = await enc.encode(ids.data, 3, {
      lora: { [slot.downInput]: { data: down, dims: [r, slot.inFeatures] }, [slot.upInput]: { data: up, dims: [slot.outFeatures, r] } },
    });
    assert.equal(maxAbsDiff(adapted.penultimate, plain.penultimate), 0);
    assert.ok(maxAbsDiff(adapted.lastHidden, plain.lastHidden) > 1e-3);
  } finally {
    await enc.release();
  }
});

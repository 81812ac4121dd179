import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { oracleDir } from '../paths.ts';
import { loadModel } from '../weights/load-model.ts';
import type { SdxlModel, UNetConfig } from '../weights/types.ts';
import { maxAbsDiff, oracleF32, oracleFolderConfig, oracleFolderWeights, readWeightsMap } from './test-support.ts';
import { buildUNetGraph, UNet } from './unet.ts';
import { sinusoidFrequencies } from './unet-blocks.ts';

const TOL = 1e-4;

/** UNetConfig of the oracle's diffusers folder, read from its config.json (until loadModel derives it). */
function folderUNetConfig(): UNetConfig {
  const j = oracleFolderConfig('unet');
  const cross = (j.down_block_types as string[]).map((t) => t.startsWith('CrossAttn'));
  const layers = j.transformer_layers_per_block as number[];
  const heads = j.attention_head_dim as number[]; // diffusers' legacy name: these are head counts
  return {
    inChannels: j.in_channels,
    outChannels: j.out_channels,
    blockOutChannels: j.block_out_channels,
    layersPerBlock: j.layers_per_block,
    transformerLayersPerBlock: layers.map((n, i) => (cross[i] ? n : 0)),
    midTransformerLayers: layers[layers.length - 1],
    numHeads: heads.map((n, i) => (cross[i] ? n : 0)),
    crossAttentionDim: j.cross_attention_dim,
    normNumGroups: j.norm_num_groups,
    normEps: j.norm_eps,
    timeEmbedDim: 4 * j.block_out_channels[0],
    addTimeEmbedDim: j.addition_time_embed_dim,
    projectionClassEmbeddingsInputDim: j.projection_class_embeddings_input_dim,
    useLinearProjection: j.use_linear_projection,
  };
}

function folderModel(): Pick<SdxlModel, 'weights' | 'config'> {
  return {
    weights: { unet: oracleFolderWeights('unet') },
    config: { unet: folderUNetConfig() },
  } as unknown as Pick<SdxlModel, 'weights' | 'config'>;
}

/** Deterministic values in [−scale, scale) (test data only). */
function seeded(n: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

function feedsFrom(prefix: string, batch: number, timestep: Float32Array) {
  const sample = oracleF32(`${prefix}/sample`);
  const ehs = oracleF32(`${prefix}/encoder_hidden_states`);
  return {
    sample: sample.data,
    batch,
    height: sample.shape[2],
    width: sample.shape[3],
    timestep,
    encoderHiddenStates: ehs.data,
    seqLen: ehs.shape[1],
    textEmbeds: oracleF32(`${prefix}/text_embeds`).data,
    timeIds: oracleF32(`${prefix}/time_ids`).data,
  };
}

/** The two components.safetensors cases and one img2img denoising step, against one UNet. */
async function checkParity(unet: UNet, label: string): Promise<void> {
  const t8 = oracleF32('unet/8x8/timestep');
  assert.deepEqual(t8.shape, []);
  const cases = [
    { name: 'unet/8x8', timestep: new Float32Array([t8.data[0], t8.data[0]]) }, // 0-dim 999 expanded to the batch
    { name: 'unet/8x12', timestep: oracleF32('unet/8x12/timestep').data }, // per-sample (1, 500)
  ];
  for (const c of cases) {
    const out = await unet.run(feedsFrom(c.name, 2, c.timestep));
    const err = maxAbsDiff(out, oracleF32(`${c.name}/out`).data);
    console.log(`${label} ${c.name}: max abs error ${err.toExponential(2)}`);
    assert.ok(err <= TOL, `${label} ${c.name}: max abs error ${err}`);
  }
  const trace = 'img2img_trace';
  const x = oracleF32('step00/latent_model_input', trace);
  const ehs = oracleF32('unet_cond/encoder_hidden_states', trace);
  const t = oracleF32('step00/timestep', trace).data[0];
  const out = await unet.run({
    sample: x.data,
    batch: 2,
    height: x.shape[2],
    width: x.shape[3],
    timestep: new Float32Array([t, t]),
    encoderHiddenStates: ehs.data,
    seqLen: ehs.shape[1],
    textEmbeds: oracleF32('unet_cond/text_embeds', trace).data,
    timeIds: oracleF32('unet_cond/time_ids', trace).data,
  });
  const err = maxAbsDiff(out, oracleF32('step00/noise_pred_raw', trace).data);
  console.log(`${label} img2img step00: max abs error ${err.toExponential(2)}`);
  assert.ok(err <= TOL, `${label} img2img step00: max abs error ${err}`);
}

describe('UNet (tiny oracle SDXL)', () => {
  test('sinusoid frequencies: exp(−ln(10000)·i/half), first 1', () => {
    const f = sinusoidFrequencies(16, 0);
    assert.equal(f.length, 8);
    assert.equal(f[0], 1);
    assert.ok(Math.abs(f[7] - Math.exp((-Math.log(10000) * 7) / 8)) < 1e-7);
  });

  test('graph has the SDXL inputs, one output, and LoRA slots on every Linear and Conv', () => {
    const built = buildUNetGraph(folderModel(), { lora: true });
    const modules = new Set(built.loraSlots.map((s) => s.module));
    const block = 'down_blocks.1.attentions.0.transformer_blocks.0';
    for (const m of [
      ...['attn1', 'attn2'].flatMap((a) => ['to_q', 'to_k', 'to_v', 'to_out.0'].map((p) => `${block}.${a}.${p}`)),
      `${block}.ff.net.0.proj`,
      `${block}.ff.net.2`,
      'down_blocks.1.attentions.0.proj_in',
      'down_blocks.1.attentions.0.proj_out',
      'mid_block.attentions.0.transformer_blocks.2.attn2.to_k',
      'up_blocks.0.attentions.2.transformer_blocks.2.ff.net.2',
      'down_blocks.0.resnets.0.conv1',
      'down_blocks.1.resnets.0.conv_shortcut',
      'down_blocks.1.resnets.0.time_emb_proj',
      'up_blocks.1.resnets.2.conv2',
      'down_blocks.0.downsamplers.0.conv',
      'up_blocks.0.upsamplers.0.conv',
      'conv_in',
      'conv_out',
    ]) {
      assert.ok(modules.has(m), `no LoRA slot for ${m}`);
    }
    const q = built.loraSlots.find((s) => s.module === `${block}.attn2.to_k`);
    assert.deepEqual([q?.kind, q?.inFeatures, q?.outFeatures], ['linear', 96, 32]);
    const conv = built.loraSlots.find((s) => s.module === 'down_blocks.1.resnets.0.conv1');
    assert.deepEqual([conv?.kind, conv?.inFeatures, conv?.outFeatures, conv?.kernel], ['conv', 16, 32, [3, 3]]);
    // every UNet tensor of the checkpoint is used
    const used = new Set(built.graph.weightNames().map((n) => n.replace(/\[C,1,1\]$/, '')));
    const unused = [...built.weights.keys()].filter((k) => !used.has(`unet:${k}`));
    assert.deepEqual(unused, []);
    assert.equal(buildUNetGraph(folderModel()).loraSlots.length, 0);
  });

  test('a LoRA graph: empty factors change nothing; factors equal merging up·down into the weights', async () => {
    const base = folderModel();
    const unet = await UNet.create(base as SdxlModel, { threads: 2, lora: true });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-unet-lora-'));
    let merged: UNet | undefined;
    try {
      const feeds = feedsFrom('unet/8x12', 2, oracleF32('unet/8x12/timestep').data);
      const plain = await unet.run(feeds);
      assert.ok(maxAbsDiff(plain, oracleF32('unet/8x12/out').data) <= TOL);

      // rank-2 factors on one cross-attention Linear and one 3×3 conv; the same deltas merged into a weight copy
      const src = base.weights.unet.get('conv_in.weight')!.file;
      const copy = path.join(dir, 'unet.safetensors');
      fs.copyFileSync(src, copy);
      const mergedWeights = readWeightsMap(copy);
      const lora: Record<string, { data: Float32Array; dims: number[] }> = {};
      const fd = fs.openSync(copy, 'r+');
      try {
        for (const module of ['mid_block.attentions.0.transformer_blocks.1.attn2.to_k', 'down_blocks.1.resnets.0.conv1']) {
          const slot = unet.loraSlots.find((x) => x.module === module)!;
          const k = slot.kernel[0] * slot.kernel[1];
          const rank = 2;
          const down = seeded(rank * slot.inFeatures * k, 1, 0.2);
          const up = seeded(slot.outFeatures * rank, 2, 0.2);
          lora[slot.downInput] = { data: down, dims: slot.kind === 'linear' ? [rank, slot.inFeatures] : [rank, slot.inFeatures, ...slot.kernel] };
          lora[slot.upInput] = { data: up, dims: slot.kind === 'linear' ? [slot.outFeatures, rank] : [slot.outFeatures, rank, 1, 1] };
          const r = mergedWeights.get(`${module}.weight`)!;
          const w = new Float32Array(r.byteLength / 4);
          fs.readSync(fd, new Uint8Array(w.buffer), 0, r.byteLength, r.byteOffset);
          const cols = slot.inFeatures * k; // weight [out, in(, kh, kw)] row-major
          for (let o = 0; o < slot.outFeatures; o++) {
            for (let j = 0; j < cols; j++) for (let q = 0; q < rank; q++) w[o * cols + j] += up[o * rank + q] * down[q * cols + j];
          }
          fs.writeSync(fd, new Uint8Array(w.buffer), 0, r.byteLength, r.byteOffset);
        }
      } finally {
        fs.closeSync(fd);
      }
      const withLora = await unet.run(feeds, lora);
      assert.ok(maxAbsDiff(withLora, plain) > 1e-3, 'the factors changed nothing');
      merged = await UNet.create({ ...base, weights: { unet: mergedWeights } } as SdxlModel, { threads: 2 });
      const err = maxAbsDiff(withLora, await merged.run(feeds));
      assert.ok(err <= 1e-5, `LoRA vs merged weights: max abs error ${err}`);
    } finally {
      await unet.release();
      await merged?.release();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const layout of ['diffusers', 'single-file'] as const) {
    describe(`loadModel (${layout}) parity`, () => {
      const source = path.join(oracleDir(), layout === 'diffusers' ? 'tiny-sdxl' : 'tiny-sdxl.safetensors');
      let cacheDir = '';
      before(() => {
        cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-unet-test-'));
      });
      after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

      test('components unet/8x8, unet/8x12 and img2img step 0 within 1e-4; input sizes checked', async () => {
        const model = await loadModel(source, { cacheDir });
        assert.deepEqual(model.config.unet, folderUNetConfig());
        const unet = await UNet.create(model, { threads: 2 });
        try {
          await checkParity(unet, layout);
          const f = feedsFrom('unet/8x8', 2, new Float32Array([999, 999]));
          await assert.rejects(unet.run({ ...f, seqLen: 76 }), /encoderHiddenStates has 14784 values, expected 14592/);
        } finally {
          await unet.release();
        }
      });
    });
  }
});

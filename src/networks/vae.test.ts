import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { oracleDir } from '../paths.ts';
import { loadModel } from '../weights/load-model.ts';
import type { VaeConfig } from '../weights/types.ts';
import { maxAbsDiff, oracleF32, oracleFolderConfig, oracleFolderWeights } from './test-support.ts';
import { buildVaeDecoderGraph, buildVaeEncoderGraph, VaeDecoder, VaeEncoder, type VaeSource } from './vae.ts';

const TOL = 1e-4;

/** The oracle's diffusers VAE through the test-support reader (config from its config.json). */
function folderSource(): VaeSource {
  const c = oracleFolderConfig('vae');
  const vae: VaeConfig = {
    inChannels: c.in_channels,
    latentChannels: c.latent_channels,
    blockOutChannels: c.block_out_channels,
    layersPerBlock: c.layers_per_block,
    normNumGroups: c.norm_num_groups,
    scalingFactor: c.scaling_factor,
  };
  return { weights: { vae: oracleFolderWeights('vae') }, config: { vae } };
}

/** Both layouts through the real loader (temp cache dir). */
async function loaderSources(cacheDir: string): Promise<[string, VaeSource][]> {
  return [
    ['loadModel(diffusers folder)', await loadModel(path.join(oracleDir(), 'tiny-sdxl'), { cacheDir })],
    ['loadModel(single file)', await loadModel(path.join(oracleDir(), 'tiny-sdxl.safetensors'), { cacheDir })],
  ];
}

/** The folder weights with the mid-attention Linear weights shaped [C, C, 1, 1], as single files store them. */
function convShapedAttention(): VaeSource {
  const src = folderSource();
  const vae = new Map(src.weights.vae);
  for (const [name, r] of vae) {
    if (name.includes('.mid_block.attentions.0.to_') && r.shape.length === 2) vae.set(name, { ...r, shape: [...r.shape, 1, 1] });
  }
  return { weights: { vae }, config: src.config };
}

const sources: [string, VaeSource][] = [
  ['test-support reader (diffusers folder)', folderSource()],
  ['diffusers folder, attention as [C,C,1,1]', convShapedAttention()],
];

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-vae-test-'));
before(async () => {
  sources.push(...(await loaderSources(cacheDir)));
});
after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

test('graphs carry no LoRA slots; encoder and decoder use disjoint weights', () => {
  const enc = buildVaeEncoderGraph(folderSource());
  const dec = buildVaeDecoderGraph(folderSource());
  assert.equal(enc.loraSlots.length, 0);
  assert.equal(dec.loraSlots.length, 0);
  // every encoder weight but the decoder's, and vice versa
  assert.ok(enc.graph.weightNames().every((n) => !n.includes('decoder.') && !n.includes('post_quant_conv')));
  assert.ok(dec.graph.weightNames().every((n) => !n.includes('encoder.') && !n.includes(':quant_conv')));
});

describe('VAE parity with diffusers (components.safetensors)', () => {
  test('encoder and decoder within 1e-4 for both layouts (one session serves every size)', async (t) => {
    assert.equal(sources.length, 4);
    for (const [label, source] of sources) {
      const enc = await VaeEncoder.create(source, { threads: 2 });
      const dec = await VaeDecoder.create(source, { threads: 2 });
      try {
        for (const size of ['64x64', '32x48']) {
          const image = oracleF32(`vae_encode/${size}/image`);
          const [b, , h, w] = image.shape;
          const post = await enc.encode(image.data, b, h, w);
          for (const key of ['mean', 'logvar', 'std'] as const) {
            const err = maxAbsDiff(post[key], oracleF32(`vae_encode/${size}/${key}`).data);
            t.diagnostic(`${label} encode ${size} ${key}: max abs err ${err.toExponential(2)}`);
            assert.ok(err <= TOL, `${label} encode ${size} ${key}: ${err}`);
          }
        }
        for (const size of ['8x8', '8x12']) {
          const z = oracleF32(`vae_decode/${size}/z`);
          const [b, , h, w] = z.shape;
          const out = await dec.decode(z.data, b, h, w);
          const err = maxAbsDiff(out, oracleF32(`vae_decode/${size}/out`).data);
          t.diagnostic(`${label} decode ${size}: max abs err ${err.toExponential(2)}`);
          assert.ok(err <= TOL, `${label} decode ${size}: ${err}`);
        }
      } finally {
        await enc.release();
        await dec.release();
      }
    }
  });

  test('batch of two decodes each sample like batch one', async () => {
    const dec = await VaeDecoder.create(folderSource(), { threads: 2 });
    try {
      const z = oracleF32('vae_decode/8x8/z').data;
      const two = new Float32Array(z.length * 2);
      two.set(z, 0);
      two.set(z, z.length);
      const out = await dec.decode(two, 2, 8, 8);
      const ref = oracleF32('vae_decode/8x8/out').data;
      assert.ok(maxAbsDiff(out.subarray(0, ref.length), ref) <= TOL);
      assert.ok(maxAbsDiff(out.subarray(ref.length), ref) <= TOL);
    } finally {
      await dec.release();
    }
  });

  test('bad inputs are refused with INVALID_INPUT', async () => {
    const enc = await VaeEncoder.create(folderSource(), { threads: 2 });
    try {
      await assert.rejects(enc.encode(new Float32Array(3 * 60 * 64), 1, 60, 64), { code: 'INVALID_INPUT' });
      await assert.rejects(enc.encode(new Float32Array(10), 1, 64, 64), { code: 'INVALID_INPUT' });
    } finally {
      await enc.release();
    }
  });
});

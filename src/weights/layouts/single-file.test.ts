import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { oracleDir } from '../../paths.ts';
import { readSafetensorsHeader } from '../safetensors.ts';
import { FULL_CONFIGS, modelTensors, TINY_CONFIGS } from '../test-model-spec.ts';
import { isIgnoredKey, mapByLongestPrefix } from './key-map.ts';
import { mapSingleFile, sgmUnetTable, sgmVaeTable } from './single-file.ts';
import { keyMapForConfig, singleFileEntries } from './single-file-write.ts';
import type { ComponentName } from '../types.ts';

const COMPONENTS: ComponentName[] = ['unet', 'vae', 'textEncoder1', 'textEncoder2'];
const SDXL = { levels: 3, layersPerBlock: 2, downAttention: [false, true, true], upAttention: [true, true, false] };

test('SDXL UNet module table: known correspondences', () => {
  const t = sgmUnetTable(SDXL);
  const cases: [string, string][] = [
    ['input_blocks.0.0.weight', 'conv_in.weight'],
    ['input_blocks.1.0.in_layers.0.weight', 'down_blocks.0.resnets.0.norm1.weight'],
    ['input_blocks.2.0.out_layers.3.bias', 'down_blocks.0.resnets.1.conv2.bias'],
    ['input_blocks.3.0.op.weight', 'down_blocks.0.downsamplers.0.conv.weight'],
    ['input_blocks.4.0.skip_connection.weight', 'down_blocks.1.resnets.0.conv_shortcut.weight'],
    ['input_blocks.5.1.transformer_blocks.1.attn2.to_k.weight', 'down_blocks.1.attentions.1.transformer_blocks.1.attn2.to_k.weight'],
    ['input_blocks.6.0.op.bias', 'down_blocks.1.downsamplers.0.conv.bias'],
    ['input_blocks.8.1.proj_out.weight', 'down_blocks.2.attentions.1.proj_out.weight'],
    ['middle_block.0.emb_layers.1.weight', 'mid_block.resnets.0.time_emb_proj.weight'],
    ['middle_block.1.transformer_blocks.9.ff.net.0.proj.weight', 'mid_block.attentions.0.transformer_blocks.9.ff.net.0.proj.weight'],
    ['middle_block.2.in_layers.2.weight', 'mid_block.resnets.1.conv1.weight'],
    ['output_blocks.2.2.conv.weight', 'up_blocks.0.upsamplers.0.conv.weight'],
    ['output_blocks.5.2.conv.bias', 'up_blocks.1.upsamplers.0.conv.bias'],
    ['output_blocks.6.0.skip_connection.weight', 'up_blocks.2.resnets.0.conv_shortcut.weight'],
    ['output_blocks.8.0.out_layers.0.weight', 'up_blocks.2.resnets.2.norm2.weight'],
    ['output_blocks.3.1.norm.weight', 'up_blocks.1.attentions.0.norm.weight'],
    ['time_embed.2.weight', 'time_embedding.linear_2.weight'],
    ['label_emb.0.0.bias', 'add_embedding.linear_1.bias'],
    ['out.0.weight', 'conv_norm_out.weight'],
    ['out.2.bias', 'conv_out.bias'],
  ];
  for (const [sgm, diffusers] of cases) assert.equal(mapByLongestPrefix(sgm, t), diffusers, sgm);
  assert.equal(mapByLongestPrefix('input_blocks.1.0.unknown.weight', t), undefined);
  assert.equal(mapByLongestPrefix('output_blocks.8.1.conv.weight', t), undefined); // the last level has no upsampler
});

test('VAE table: decoder up levels are reversed, nin_shortcut and mid attention renamed', () => {
  const t = sgmVaeTable(4, 2);
  assert.equal(mapByLongestPrefix('decoder.up.0.block.2.nin_shortcut.weight', t), 'decoder.up_blocks.3.resnets.2.conv_shortcut.weight');
  assert.equal(mapByLongestPrefix('decoder.up.3.upsample.conv.weight', t), 'decoder.up_blocks.0.upsamplers.0.conv.weight');
  assert.equal(mapByLongestPrefix('encoder.down.1.downsample.conv.bias', t), 'encoder.down_blocks.1.downsamplers.0.conv.bias');
  assert.equal(mapByLongestPrefix('encoder.mid.attn_1.proj_out.weight', t), 'encoder.mid_block.attentions.0.to_out.0.weight');
  assert.equal(mapByLongestPrefix('decoder.norm_out.bias', t), 'decoder.conv_norm_out.bias');
  assert.equal(mapByLongestPrefix('decoder.up.0.upsample.conv.weight', t), undefined);
});

test('writing canonical tensors as a single file reproduces the oracle single file keys and shapes', async () => {
  const h = await readSafetensorsHeader(path.join(oracleDir(), 'tiny-sdxl.safetensors'));
  const mapped = mapSingleFile(h);
  assert.equal(mapped.unmapped.length, 0);
  const cfg = structuredClone(TINY_CONFIGS);
  cfg.textEncoder1.vocabSize = cfg.textEncoder2.vocabSize = 814;
  const written = new Map<string, number[]>();
  for (const c of COMPONENTS) {
    const tensors = [...mapped.weights[c]].map(([name, t]) => ({ name, shape: t.shape, values: () => new Float32Array(0) }));
    for (const e of singleFileEntries(c, tensors, keyMapForConfig(c, cfg), 'F32')) written.set(e.name, e.shape);
  }
  const original = [...h.tensors].filter(([k]) => !isIgnoredKey(k));
  assert.equal(written.size, original.length);
  for (const [k, e] of original) assert.deepEqual(written.get(k), e.shape, k);
});

test('full-size SDXL: canonical → single-file names → canonical is the identity (1680 UNet tensors)', () => {
  const specs = modelTensors(FULL_CONFIGS);
  assert.equal(specs.unet.length, 1680);
  for (const c of COMPONENTS) {
    const entries = singleFileEntries(c, specs[c].map((s) => ({ ...s, values: () => new Float32Array(0) })), keyMapForConfig(c, FULL_CONFIGS), 'F16');
    // parse back through the loader's mapping, using a synthetic header
    let offset = 0;
    const tensors = new Map(entries.map((e) => {
      const n = e.shape.reduce((a, b) => a * b, 1) * 2;
      const entry = { dtype: 'F16' as const, shape: e.shape, byteOffset: offset, byteLength: n };
      offset += n;
      return [e.name, entry];
    }));
    const back = mapSingleFile({ file: '/x', fileSize: offset, headerLength: 0, dataStart: 0, tensors, metadata: {} });
    assert.deepEqual(back.unmapped, []);
    assert.deepEqual([...back.weights[c].keys()].sort(), specs[c].map((s) => s.name).sort(), c);
    for (const s of specs[c]) assert.deepEqual(back.weights[c].get(s.name)!.shape, s.shape, s.name);
  }
});

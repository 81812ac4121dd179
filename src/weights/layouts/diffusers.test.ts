import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../../paths.ts';
import { writeSafetensors } from '../safetensors.ts';
import { canonicalDiffusersName, DIFFUSERS_PARTS, diffusersPadTokens, readDiffusersComponent } from './diffusers.ts';
import { invertTable, mapByLongestPrefix } from './key-map.ts';

test('key-map: longest prefix wins, rest kept, inversion refuses duplicates', () => {
  const t = new Map([['a.b', 'x'], ['a.b.c', 'y.z'], ['q', '']]);
  assert.equal(mapByLongestPrefix('a.b.c.weight', t), 'y.z.weight');
  assert.equal(mapByLongestPrefix('a.b.d.weight', t), 'x.d.weight');
  assert.equal(mapByLongestPrefix('q.w', t), 'w');
  assert.equal(mapByLongestPrefix('a.weight', t), undefined);
  assert.deepEqual([...invertTable(new Map([['a', 'b']]))], [['b', 'a']]);
  assert.throws(() => invertTable(new Map([['a', 'b'], ['c', 'b']])));
});

test('canonical names: position_ids dropped, old VAE attention names renamed', () => {
  assert.equal(canonicalDiffusersName('textEncoder1', 'text_model.embeddings.position_ids'), undefined);
  assert.equal(canonicalDiffusersName('vae', 'encoder.mid_block.attentions.0.query.weight'), 'encoder.mid_block.attentions.0.to_q.weight');
  assert.equal(canonicalDiffusersName('vae', 'decoder.mid_block.attentions.0.proj_attn.bias'), 'decoder.mid_block.attentions.0.to_out.0.bias');
  assert.equal(canonicalDiffusersName('vae', 'decoder.conv_in.weight'), 'decoder.conv_in.weight');
  assert.equal(canonicalDiffusersName('unet', 'down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight'), 'down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight');
});

test('old-style VAE file (query/key/value/proj_attn as [C,C,1,1]) reads with canonical names and shapes', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atelier-dl-'));
  await mkdir(path.join(dir, 'vae'));
  await writeSafetensors(path.join(dir, 'vae', 'diffusion_pytorch_model.safetensors'), [
    { name: 'encoder.mid_block.attentions.0.key.weight', dtype: 'F16', shape: [4, 4, 1, 1], data: new Float32Array(16) },
    { name: 'encoder.mid_block.attentions.0.proj_attn.weight', dtype: 'F32', shape: [4, 4], data: new Float32Array(16) },
  ]);
  const c = await readDiffusersComponent(dir, DIFFUSERS_PARTS[1]);
  assert.deepEqual([...c.weights].map(([n, t]) => [n, t.shape, t.dtype]), [
    ['encoder.mid_block.attentions.0.to_k.weight', [4, 4], 'F16'],
    ['encoder.mid_block.attentions.0.to_out.0.weight', [4, 4], 'F32'],
  ]);
  assert.equal(c.config, null);
  await rm(dir, { recursive: true });
});

test('pad tokens from tokenizer configs (string or AddedToken object), SDXL defaults otherwise', async () => {
  assert.deepEqual(await diffusersPadTokens(path.join(oracleDir(), 'tiny-sdxl')), { tokenizer1: '<|endoftext|>', tokenizer2: '!' });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atelier-dl-'));
  await mkdir(path.join(dir, 'tokenizer_2'));
  await writeFile(path.join(dir, 'tokenizer_2', 'tokenizer_config.json'), JSON.stringify({ pad_token: { content: '<|endoftext|>' } }));
  assert.deepEqual(await diffusersPadTokens(dir), { tokenizer1: '<|endoftext|>', tokenizer2: '<|endoftext|>' });
  await rm(dir, { recursive: true });
});

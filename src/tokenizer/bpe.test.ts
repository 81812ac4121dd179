import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BytePairEncoder, END_OF_WORD, parseMerges, type WorkMeter } from './bpe.ts';
import fs from 'node:fs';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { NumberHeap } from './number-heap.ts';

/** CLIP's `bpe()` as written: find the lowest-ranked pair, merge all its occurrences in one pass, repeat. */
function referenceMerge(ranks: ReadonlyMap<string, number>, symbols: string): string[] {
  let word = [...symbols.slice(0, -1), symbols.slice(-1) + END_OF_WORD];
  for (;;) {
    let best = Infinity;
    let pair: [string, string] | undefined;
    for (let i = 0; i < word.length - 1; i++) {
      const r = ranks.get(`${word[i]} ${word[i + 1]}`);
      if (r !== undefined && r < best) [best, pair] = [r, [word[i]!, word[i + 1]!]];
    }
    if (!pair) return word;
    const next: string[] = [];
    for (let i = 0; i < word.length; ) {
      if (word[i] === pair[0] && word[i + 1] === pair[1]) {
        next.push(pair[0] + pair[1]);
        i += 2;
      } else next.push(word[i++]!);
    }
    word = next;
  }
}

function randomWords(alphabet: string, count: number, maxLen: number, seed: number): string[] {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  return Array.from({ length: count }, () => {
    const len = 1 + Math.floor(next() * maxLen);
    let w = '';
    for (let i = 0; i < len; i++) w += alphabet[Math.floor(next() * alphabet.length)];
    return w;
  });
}

test('BPE merges exactly as the reference pass-by-pass loop: overlaps ("aaa"), repeats, chains, the real merges', async () => {
  const toy = ['a a', 'aa a', 'b c', 'a b', 'ab c', 'c a', 'aa aa', 'a a</w>', 'c c</w>', 'bc a'];
  const toyRanks = new Map(toy.map((k, r) => [k, r]));
  const toyBpe = new BytePairEncoder(toy);
  for (const w of ['a', 'aa', 'aaa', 'aaaa', 'aaaaa', 'abcabc', 'abcaaabcc', 'cacacaca', ...randomWords('abc', 400, 24, 3)]) {
    assert.deepEqual(toyBpe.encodeWord(w), referenceMerge(toyRanks, w), w);
  }
  // the tiny oracle model's real merges.txt
  const merges = parseMerges(fs.readFileSync(path.join(oracleDir(), 'tiny-sdxl', 'tokenizer', 'merges.txt'), 'utf8'));
  const ranks = new Map<string, number>();
  merges.forEach((k, r) => k && ranks.set(k, r));
  const bpe = new BytePairEncoder(merges);
  const words = [...randomWords('abcdefghijklmnopqrstuvwxyz', 300, 40, 5), 'thisisaverylongwordwithoutanyspacesatall', 'lolololololololol', randomWords('etaoinshr', 1, 3000, 8)[0]!];
  for (const w of words) assert.deepEqual(bpe.encodeWord(w), referenceMerge(ranks, w), w.slice(0, 40));
});

test('long words are not cached (the cache would hold them all), short ones are', () => {
  const merges = ['a b', 'ab ab', 'b a'];
  const bpe = new BytePairEncoder(merges);
  const meter = (w: string): number => {
    const m: WorkMeter = { units: 0 };
    bpe.encodeWord(w, m);
    return m.units;
  };
  assert.ok(meter('ab'.repeat(5_000)) > 0);
  assert.ok(meter('ab'.repeat(5_000)) > 0, 'a 10,000-symbol word is computed again, not served from the cache');
  assert.ok(meter('abba') > 0);
  assert.equal(meter('abba'), 0, 'a short word is served from the cache');
});

test('NumberHeap pops in ascending order', () => {
  const h = new NumberHeap();
  const values = randomWords('0123456789', 500, 6, 9).map(Number);
  for (const v of values) h.push(v);
  const out: number[] = [];
  while (h.size > 0) out.push(h.pop()!);
  assert.deepEqual(out, [...values].sort((a, b) => a - b));
  assert.equal(h.pop(), undefined);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { WorkMeter } from './bpe.ts';
import { ClipTokenizer } from './clip-bpe.ts';

/**
 * Deterministic text of exactly `n` characters. 'words': distinct words (a counter written in letters, so the BPE
 * cache never hides work) with spaces and commas; 'no-spaces': one word of random letters; 'multibyte': one word of
 * two-byte letters (Cyrillic, Greek, ß).
 */
function textOf(kind: 'words' | 'no-spaces' | 'multibyte', n: number, seed: number): string {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  let out = '';
  if (kind === 'words') {
    for (let i = seed * 1_000_000; out.length < n; i++) {
      let w = '';
      for (let v = i; v > 0 || w.length < 5; v = Math.floor(v / 26)) w += String.fromCharCode(97 + (v % 26));
      out += w + (i % 10 === 0 ? ', ' : ' ');
    }
  } else {
    const alphabet = kind === 'multibyte' ? 'жßяψдλ' : 'abcdefghijklmnopqrstuvwxyz';
    while (out.length < n) out += alphabet[Math.floor(next() * alphabet.length)];
  }
  return out.slice(0, n);
}

function work(tok: ClipTokenizer, text: string): { units: number; rows: number } {
  const meter: WorkMeter = { units: 0 };
  const rows = tok.tokenizeForModel(text, { long: 'chunk', meter });
  return { units: meter.units, rows: rows.length };
}

// Counted work (BPE pair look-ups, heap operations, symbol moves), never wall-clock time: doubling the text must
// about double the work. The bound allows 2.5× (not 2×) for the words' different mix; quadratic work gives ~4×.
test('tokenising is linear in the prompt length: with spaces, without, one 10,000-character word, multibyte', async (t) => {
  const tok = await ClipTokenizer.standard({ padToken: '!' });
  for (const kind of ['words', 'no-spaces', 'multibyte'] as const) {
    const small = work(tok, textOf(kind, 10_000, 7));
    const large = work(tok, textOf(kind, 20_000, 11));
    assert.ok(small.rows > 1 && large.rows > small.rows, `${kind}: chunked into ${small.rows} and ${large.rows} rows`);
    const ratio = large.units / small.units;
    t.diagnostic(`${kind}: ${small.units} units for 10,000 characters (${small.rows} rows), ${large.units} for 20,000 (${large.rows} rows)`);
    assert.ok(ratio < 2.5, `${kind}: ${small.units} units for 10,000 characters, ${large.units} for 20,000 (×${ratio.toFixed(2)})`);
    assert.ok(large.units < 40 * 20_000, `${kind}: ${large.units} units for 20,000 characters is a small constant per character`);
  }
});

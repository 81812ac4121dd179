/**
 * CLIP's byte-level BPE: UTF-8 bytes mapped to printable characters, merges applied lowest rank first, `</w>` marking
 * the end of a word. Source: openai/CLIP `clip/simple_tokenizer.py` and transformers `models/clip/tokenization_clip.py`.
 */

import { NumberHeap } from './number-heap.ts';

export const END_OF_WORD = '</w>';

/** CLIP reads at most this many merge lines after the `#version` header (49152 − 256 − 2). */
export const MAX_MERGES = 49152 - 256 - 2;

/**
 * bytes_to_unicode(): bytes that are printable Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves, the other 68
 * bytes to U+0100.. in byte order. Returned in the table's insertion order (printables first), which is also the
 * order of the 256 single-character entries at the start of CLIP's vocabulary.
 */
export function byteUnicodePairs(): Array<[byte: number, ch: string]> {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const pairs: Array<[number, string]> = printable.map((b) => [b, String.fromCharCode(b)]);
  const seen = new Set(printable);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (seen.has(b)) continue;
    pairs.push([b, String.fromCharCode(256 + n)]);
    n++;
  }
  return pairs;
}

const BYTE_TO_CHAR: string[] = (() => {
  const table = new Array<string>(256);
  for (const [b, ch] of byteUnicodePairs()) table[b] = ch;
  return table;
})();

const utf8 = new TextEncoder();

/** A word's UTF-8 bytes as the printable characters BPE works on. */
export function bytesToSymbols(word: string): string {
  let out = '';
  for (const b of utf8.encode(word)) out += BYTE_TO_CHAR[b];
  return out;
}

const PAIR_LINE = /^\S+ \S+$/;

/**
 * Merges from merges.txt text, read as transformers does: strip the text, split on newlines, skip the first line
 * (the `#version` header), keep at most MAX_MERGES lines, split each on whitespace. Each merge is returned as its pair
 * key "a b" (symbols never contain whitespace); a line that is not exactly two symbols gives '' (it still uses up a
 * rank and never matches).
 */
export function parseMerges(text: string, maxMerges = MAX_MERGES): string[] {
  const body = text.trim();
  const merges: string[] = [];
  // walk line by line: OpenAI's file has 262k lines of which only the first 48894 count
  let start = body.indexOf('\n') + 1;
  while (start > 0 && merges.length < maxMerges) {
    const nl = body.indexOf('\n', start);
    const line = body.slice(start, nl < 0 ? body.length : nl);
    if (PAIR_LINE.test(line)) {
      merges.push(line);
    } else {
      const parts = line.split(/\s+/).filter((x) => x.length > 0);
      merges.push(parts.length === 2 ? `${parts[0]} ${parts[1]}` : '');
    }
    if (nl < 0) break;
    start = nl + 1;
  }
  return merges;
}

/**
 * Counts units of work done by BPE (pair-rank look-ups and symbol moves), so tests can check that the work grows
 * linearly with the text without timing anything.
 */
export interface WorkMeter {
  units: number;
}

/** Words longer than this (in bytes) are not cached: the cache holds at most maxCacheEntries × this many bytes. */
const MAX_CACHED_SYMBOLS = 64;

/** A BPE model over merge ranks, with a per-word cache (words repeat a lot across prompts). */
export class BytePairEncoder {
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, string[]>();

  /** `merges`: pair keys "a b" in rank order (as from parseMerges); a pair listed twice keeps its later rank. */
  constructor(
    merges: readonly string[],
    private readonly maxCacheEntries = 100_000,
  ) {
    // symbols never contain a space (bytes are mapped to printable characters), so "a b" is an unambiguous key
    merges.forEach((key, rank) => {
      if (key) this.ranks.set(key, rank);
    });
  }

  get mergeCount(): number {
    return this.ranks.size;
  }

  /** BPE pieces of one byte-mapped word (non-empty), the last carrying `</w>`. */
  encodeWord(symbols: string, meter?: WorkMeter): string[] {
    const hit = this.cache.get(symbols);
    if (hit) return hit;
    const pieces = this.merge(symbols, meter);
    if (symbols.length > MAX_CACHED_SYMBOLS) return pieces; // long words rarely repeat; caching them only holds memory
    if (this.cache.size >= this.maxCacheEntries) this.cache.clear();
    this.cache.set(symbols, pieces);
    return pieces;
  }

  /**
   * Merge lowest rank first, every non-overlapping occurrence of that pair left to right, until no adjacent pair has
   * a rank: the rule of CLIP's `bpe()`. Done in O(n log n) for a word of n symbols (a 10,000-character word without
   * spaces is one word): the symbols form a linked list, every adjacent pair ever formed sits in a heap keyed by
   * (rank, position), all entries of the lowest rank are taken at once and applied in position order (an entry whose
   * pair has since changed is skipped), and each merge pushes only the two pairs it creates. A merged pair never has
   * the rank it was merged at again (the joined symbol is longer than either part), so one batch is one pass of the
   * reference loop.
   */
  private merge(symbols: string, meter?: WorkMeter): string[] {
    const n = symbols.length; // byte-mapped characters are all in the BMP: one code unit each
    const syms: string[] = new Array<string>(n);
    for (let i = 0; i < n; i++) syms[i] = symbols[i]!;
    syms[n - 1] += END_OF_WORD;
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const alive = new Uint8Array(n).fill(1);
    // entry = rank × n + position of the pair's left symbol: ordered by rank, then left to right
    const heap = new NumberHeap();
    const count = (units: number) => {
      if (meter) meter.units += units;
    };
    const rankAt = (left: number): number | undefined => {
      const right = next[left]!;
      return right < 0 ? undefined : this.ranks.get(`${syms[left]} ${syms[right]}`);
    };
    const pushPair = (left: number) => {
      count(1);
      const r = left < 0 ? undefined : rankAt(left);
      if (r !== undefined) heap.push(r * n + left);
    };
    for (let i = 0; i < n - 1; i++) pushPair(i);
    const merged: number[] = [];
    while (heap.size > 0) {
      const rank = Math.floor(heap.peek()! / n);
      merged.length = 0;
      while (heap.size > 0 && Math.floor(heap.peek()! / n) === rank) {
        const left = heap.pop()! - rank * n;
        count(1);
        // skip an entry whose pair is gone (a symbol merged into a neighbour, or merged earlier in this pass)
        if (!alive[left] || rankAt(left) !== rank) continue;
        const right = next[left]!;
        syms[left] += syms[right]!;
        alive[right] = 0;
        next[left] = next[right]!;
        if (next[right]! >= 0) prev[next[right]!] = left;
        merged.push(left);
      }
      for (const left of merged) {
        if (!alive[left]) continue;
        pushPair(prev[left]!);
        pushPair(left);
      }
    }
    const word: string[] = [];
    for (let i = 0; i >= 0; i = next[i]!) {
      count(1);
      word.push(syms[i]!);
    }
    return word;
  }
}

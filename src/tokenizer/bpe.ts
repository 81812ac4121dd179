/**
 * CLIP's byte-level BPE: UTF-8 bytes mapped to printable characters, merges applied lowest rank first, `</w>` marking
 * the end of a word. Source: openai/CLIP `clip/simple_tokenizer.py` and transformers `models/clip/tokenization_clip.py`.
 */

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
  encodeWord(symbols: string): string[] {
    const hit = this.cache.get(symbols);
    if (hit) return hit;
    const pieces = this.merge(symbols);
    if (this.cache.size >= this.maxCacheEntries) this.cache.clear();
    this.cache.set(symbols, pieces);
    return pieces;
  }

  private merge(symbols: string): string[] {
    const chars = [...symbols];
    let word = [...chars.slice(0, -1), chars[chars.length - 1] + END_OF_WORD];
    while (word.length > 1) {
      // the lowest-ranked adjacent pair present in the word
      let best = Infinity;
      let first = '';
      let second = '';
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < best) {
          best = r;
          first = word[i];
          second = word[i + 1];
        }
      }
      if (best === Infinity) break;
      // merge every non-overlapping occurrence, left to right
      const next: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          next.push(first + second);
          i += 2;
        } else {
          next.push(word[i]);
          i += 1;
        }
      }
      word = next;
    }
    return word;
  }
}

/**
 * Text cleaning that transformers' slow CLIPTokenizer applies when `ftfy` is missing: BERT's BasicTokenizer with
 * do_lower_case=True (as in transformers 4.26, the version the oracle used).
 * Source: transformers `models/bert/tokenization_bert.py` (BasicTokenizer) + `tokenization_utils.py` (_is_* helpers).
 *
 * Steps, per code point: drop U+0000, U+FFFD and control characters (category C*, except \t \n \r); turn \t \n \r and
 * category Zs into a space; put spaces around CJK ideographs. Then split on whitespace; each word is lower-cased,
 * decomposed (NFD) with its non-spacing marks (Mn) dropped, and split so every punctuation character (ASCII
 * non-alphanumerics or category P*) is a word of its own.
 */

const CATEGORY_C = /^\p{C}$/u;
const CATEGORY_ZS = /^\p{Zs}$/u;
const CATEGORY_P = /^\p{P}$/u;
const NON_SPACING_MARKS = /\p{Mn}/gu;
/**
 * After cleaning, the only characters left that Python's str.split() treats as whitespace are the space itself and
 * U+2028/U+2029 (categories Zl/Zp); every other Python whitespace character is Cc (removed) or Zs (made a space).
 */
const PY_WHITESPACE_AFTER_CLEAN = /[ \u2028\u2029]+/;

function isControl(ch: string): boolean {
  if (ch === '\t' || ch === '\n' || ch === '\r') return false;
  return CATEGORY_C.test(ch);
}

function isWhitespace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || CATEGORY_ZS.test(ch);
}

/** BERT's notion of punctuation: every ASCII non-letter/non-digit printable, plus Unicode category P*. */
export function isPunctuation(ch: string): boolean {
  const cp = ch.codePointAt(0)!;
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) return true;
  return CATEGORY_P.test(ch);
}

/** The CJK Unified Ideographs blocks BERT spaces out (not Hangul, Hiragana or Katakana). */
function isCjk(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

function cleanAndSpaceCjk(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0 || cp === 0xfffd || isControl(ch)) continue;
    if (isWhitespace(ch)) out += ' ';
    else if (isCjk(cp)) out += ` ${ch} `;
    else out += ch;
  }
  return out;
}

function stripAccents(word: string): string {
  return word.normalize('NFD').replace(NON_SPACING_MARKS, '');
}

function splitOnPunctuation(word: string, out: string[]): void {
  let current = '';
  for (const ch of word) {
    if (isPunctuation(ch)) {
      if (current) out.push(current);
      out.push(ch);
      current = '';
    } else {
      current += ch;
    }
  }
  if (current) out.push(current);
}

/** BERT BasicTokenizer(do_lower_case=True).tokenize(text): the words CLIP joins with single spaces. */
export function basicTokenize(text: string): string[] {
  const words = cleanAndSpaceCjk(text).split(PY_WHITESPACE_AFTER_CLEAN);
  const out: string[] = [];
  for (const w of words) {
    if (!w) continue;
    splitOnPunctuation(stripAccents(w.toLowerCase()), out);
  }
  return out;
}

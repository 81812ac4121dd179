/**
 * Splitting text on added/special tokens before any cleaning, reproducing transformers' `Trie.split`
 * (`tokenization_utils.py`) for the slow tokenizers' no-split tokens, quirks included.
 *
 * The scan walks the text one code point at a time, keeping partial matches ("active" starts, ascending). As soon
 * as one of them is a complete token, it settles on the EARLIEST active start that yields a token (looking ahead past
 * the current position), takes that start's longest token, cuts there, drops all partial matches and resumes after
 * the cut. In effect that is leftmost-longest ("ab", "abcd": "abcde" → "abcd" | "e"), with one quirk kept for
 * id-for-id parity: the lookahead of an earlier start assumes it consumed the current character even when that
 * character broke its match, so a cut may skip a character and not be a token at all (its text is then tokenized as
 * plain text): with tokens "<" and "><b", "a><cb" splits as "a" | "><cb", both plain text, "<" not split out.
 */

export interface TextPiece {
  text: string;
  /** true when `text` is one of the tokens */
  isToken: boolean;
}

interface TrieNode {
  next: Map<string, TrieNode>;
  /** a token ends here */
  end: boolean;
}

function buildTrie(tokens: Iterable<string>): TrieNode {
  const root: TrieNode = { next: new Map(), end: false };
  for (const tok of tokens) {
    let node = root;
    for (const ch of tok) {
      let child = node.next.get(ch);
      if (!child) {
        child = { next: new Map(), end: false };
        node.next.set(ch, child);
      }
      node = child;
    }
    node.end = true;
  }
  return root;
}

/** Cut offsets (code-point indices, in pairs start/end) where tokens were found. */
function findCuts(chars: readonly string[], root: TrieNode): number[] {
  const n = chars.length;
  const cuts: number[] = [];
  let active = new Map<number, TrieNode>(); // start → node reached so far; insertion order = ascending start
  let skip = 0;
  for (let cur = 0; cur < n; cur++) {
    if (cur < skip) continue;
    const ch = chars[cur];
    const dead: number[] = [];
    let cut = false;
    for (const [start, node] of active) {
      if (node.end) {
        // the match from `start` is complete (it ends at cur); prefer an earlier active start that can match
        let bestStart = start;
        let bestEnd = cur;
        for (const [ls, lsNode] of active) {
          if (ls > bestStart) break;
          let node2 = lsNode;
          // earlier starts were already stepped past cur in this pass (or broke on it: the quirk)
          let i = ls < start ? cur + 1 : cur;
          if (node2.end) {
            bestStart = ls;
            bestEnd = i;
          }
          while (i < n) {
            const next = node2.next.get(chars[i]);
            if (!next) break;
            node2 = next;
            i++;
            if (node2.end) {
              bestStart = ls;
              bestEnd = i;
            }
          }
        }
        cuts.push(bestStart, bestEnd);
        skip = bestEnd;
        cut = true;
        break;
      }
      const child = node.next.get(ch);
      if (child) active.set(start, child);
      else dead.push(start);
    }
    if (cut) active = new Map();
    else for (const s of dead) active.delete(s);
    const first = root.next.get(ch);
    if (cur >= skip && first) active.set(cur, first);
  }
  // a match still open at the end of the text: the earliest complete one
  for (const [start, node] of active) {
    if (node.end) {
      cuts.push(start, n);
      break;
    }
  }
  return cuts;
}

export function splitOnTokens(text: string, tokens: readonly string[]): TextPiece[] {
  const set = new Set(tokens.filter((t) => t.length > 0));
  if (set.size === 0) return text ? [{ text, isToken: false }] : [];
  const chars = [...text];
  const pieces: TextPiece[] = [];
  let prev = 0;
  for (const off of [...findCuts(chars, buildTrie(set)), chars.length]) {
    if (off <= prev) continue; // empty cut (or an inconsistent one, which transformers also skips)
    const piece = chars.slice(prev, off).join('');
    pieces.push({ text: piece, isToken: set.has(piece) });
    prev = off;
  }
  return pieces;
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitOnTokens } from './added-tokens.ts';

// reference splits recorded from transformers' Trie.split (tokenization_utils.py)
const CASES: Array<[tokens: string[], text: string, split: string[]]> = [
  [['abc', 'b'], 'xabcx', ['x', 'abc', 'x']],
  [['ab', 'abcd'], 'abcde', ['abcd', 'e']],
  [['ab', 'abcd', 'bc'], 'zabcdz abcz', ['z', 'abcd', 'z ', 'ab', 'cz']],
  [['[CLS]', 'extra_id_1', 'extra_id_100'], '[CLS] This is a extra_id_100', ['[CLS]', ' This is a ', 'extra_id_100']],
  [['<s0>', '<s1>', '!'], 'a <s0><s1>! b<s0', ['a ', '<s0>', '<s1>', '!', ' b<s0']],
  [['\u{1F600}a', 'a'], 'x\u{1F600}a\u{1F600}b', ['x', '\u{1F600}a', '\u{1F600}b']],
  // the lookahead quirk: cuts that are not tokens
  [['<', '><b'], 'a><cb', ['a', '><cb']],
  [['<', '><b'], ' ccb><!a><cbb', [' ccb>', '<', '!a', '><cb', 'b']],
  [['!', 'c>', '<bbc', '<!a'], '!!acc abb<!<a  b>b', ['!', '!', 'acc abb', '<!<a', '  b>b']],
  [['c', '>ca'], 'a>c>ca> ac', ['a>', 'c', '>ca', '> a', 'c']],
];

test('splitOnTokens reproduces transformers Trie.split, quirks included', () => {
  for (const [tokens, text, want] of CASES) {
    const got = splitOnTokens(text, tokens);
    assert.deepEqual(got.map((p) => p.text), want, `${JSON.stringify(tokens)} ${JSON.stringify(text)}`);
    for (const p of got) assert.equal(p.isToken, tokens.includes(p.text));
  }
});

test('splitOnTokens without tokens or text', () => {
  assert.deepEqual(splitOnTokens('abc', []), [{ text: 'abc', isToken: false }]);
  assert.deepEqual(splitOnTokens('', ['a']), []);
  assert.deepEqual(splitOnTokens('aaa', ['a']), [{ text: 'a', isToken: true }, { text: 'a', isToken: true }, { text: 'a', isToken: true }]);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { basicTokenize, isPunctuation } from './text-clean.ts';

test('BERT BasicTokenizer cleaning: lower-case, accents, punctuation, CJK, whitespace, controls', () => {
  assert.deepEqual(basicTokenize("It's a DOG'S life..."), ['it', "'", 's', 'a', 'dog', "'", 's', 'life', '.', '.', '.']);
  assert.deepEqual(basicTokenize('Crème Brûlée'), ['creme', 'brulee']);
  assert.deepEqual(basicTokenize('東京tower'), ['東', '京', 'tower']);
  assert.deepEqual(basicTokenize(' a\t\tb\nc\u00a0d\u3000e\u2028f '), ['a', 'b', 'c', 'd', 'e', 'f']);
  assert.deepEqual(basicTokenize('x\u0000y\u200dz\ufffdw\u0007v'), ['xyzwv']);
  assert.deepEqual(basicTokenize('$+<=>^`|~'), ['$', '+', '<', '=', '>', '^', '`', '|', '~']);
  assert.deepEqual(basicTokenize('€5 ½'), ['€5', '½']); // symbols (Sc, No) are not punctuation
  assert.deepEqual(basicTokenize('\u0301'), []); // a lone combining mark vanishes
  assert.deepEqual(basicTokenize(''), []);
  assert.equal(isPunctuation('«'), true);
  assert.equal(isPunctuation('€'), false);
});

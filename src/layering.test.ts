import { test } from 'node:test';
import assert from 'node:assert/strict';
// @ts-expect-error: a plain .mjs script without type declarations
import { cycles, moduleGraph, upwardArrows } from '../scripts/import-graph.mjs';

// Data flows one way: cli → api → jobs → engine → pipeline → adapters → quant → sampling → networks → tokenizer → images
// → onnx → weights → contract (scripts/import-graph.mjs holds the layers).
test('no import cycle between modules', () => {
  assert.deepEqual(cycles(moduleGraph()).map((c: string[]) => c.join(' → ')), []);
});

test('no import goes up the layering', () => {
  assert.deepEqual(upwardArrows(moduleGraph()), []);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GraphBuilder, MS_DOMAIN } from './graph.ts';
import { Session } from './session.ts';
import { f32ToBf16, f32ToF16 } from '../weights/fp16.ts';

test('external weight at an unaligned offset, contrib MultiHeadAttention, zero-rank branch inputs', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-graph-'));
  // weight W [2,3] stored at byte offset 13 of a file
  const w = Float32Array.from([1, 2, 3, 4, 5, 6]);
  const file = path.join(dir, 'w.bin');
  const bytes = Buffer.alloc(13 + 24);
  Buffer.from(w.buffer).copy(bytes, 13);
  fs.writeFileSync(file, bytes);

  const g = new GraphBuilder('t');
  const x = g.input('x', 'float32', ['n', 3]);
  const W = g.weight('W', { file, dtype: 'F32', shape: [2, 3], byteOffset: 13, byteLength: 24 });
  const y = g.op('FusedMatMul', [x, W], { transB: 1 }, { domain: MS_DOMAIN }); // [n, 2]
  const down = g.input('down', 'float32', ['r', 3]);
  const up = g.input('up', 'float32', [2, 'r']);
  const branch = g.op('FusedMatMul', [g.op('FusedMatMul', [x, down], { transB: 1 }, { domain: MS_DOMAIN }), up], { transB: 1 }, { domain: MS_DOMAIN });
  g.output(g.op('Add', [y, branch]), 'y');
  // attention of a single token attends to itself: output = V
  const q = g.input('q', 'float32', [1, 1, 4]);
  g.output(g.op('MultiHeadAttention', [q, q, q], { num_heads: 2 }, { domain: MS_DOMAIN }), 'att');
  const s = await Session.create(g.build(dir), { externalFolder: dir, threads: 1, label: 'test' });
  const q1 = { data: Float32Array.from([1, 2, 3, 4]), dims: [1, 1, 4] };
  const none = { down: { data: new Float32Array(0), dims: [0, 3] }, up: { data: new Float32Array(0), dims: [2, 0] } };
  const out = await s.run({ x: { data: Float32Array.from([1, 0, 0]), dims: [1, 3] }, q: q1, ...none });
  assert.deepEqual(Array.from(out.y.data as Float32Array), [1, 4]);
  assert.deepEqual(Array.from(out.att.data as Float32Array), [1, 2, 3, 4]);
  // rank-1 branch: down = [1,1,1], up = [10, 20]
  const out2 = await s.run({
    x: { data: Float32Array.from([0, 1, 0]), dims: [1, 3] },
    q: q1,
    down: { data: Float32Array.from([1, 1, 1]), dims: [1, 3] },
    up: { data: Float32Array.from([10, 20]), dims: [2, 1] },
  });
  assert.deepEqual(Array.from(out2.y.data as Float32Array), [12, 25]);
  await s.release();
});

test('16-bit weights (F16, BF16) stay 16-bit, are cast to float32 in the graph, once per name, exactly', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-graph16-'));
  // values exactly representable in both formats: the cast must give them back bit for bit
  const values = [1, -2, 0.5, 3.25, -0.125, 96];
  const f16 = Uint16Array.from(values.map((v) => f32ToF16(Float32Array.from([v]))[0]));
  const bf16 = Uint16Array.from(values.map((v) => f32ToBf16(Float32Array.from([v]))[0]));
  const file = path.join(dir, 'w.bin');
  fs.writeFileSync(file, Buffer.concat([Buffer.alloc(3), Buffer.from(f16.buffer), Buffer.from(bf16.buffer)]));
  const g = new GraphBuilder('t16');
  const x = g.input('x', 'float32', ['n', 3]);
  const A = g.weight('A', { file, dtype: 'F16', shape: [2, 3], byteOffset: 3, byteLength: 12 });
  assert.equal(g.weight('A', { file, dtype: 'F16', shape: [2, 3], byteOffset: 3, byteLength: 12 }), A, 'one cast per weight');
  const B = g.weight('B', { file, dtype: 'BF16', shape: [3, 2], byteOffset: 15, byteLength: 12, transposed: true });
  g.output(g.op('FusedMatMul', [x, A], { transB: 1 }, { domain: MS_DOMAIN }), 'a');
  g.output(g.op('FusedMatMul', [x, B], { transB: 1 }, { domain: MS_DOMAIN }), 'b');
  assert.throws(() => g.weight('C', { file, dtype: 'I32', shape: [1], byteOffset: 0, byteLength: 4 }), /graphs take F32, F16 or BF16 weights/);
  const s = await Session.create(g.build(dir), { externalFolder: dir, threads: 1, label: 'test16' });
  const rows = [Float32Array.from([1, 0, 0]), Float32Array.from([0, 1, 0]), Float32Array.from([0, 0, 1])];
  const got = { a: [] as number[], b: [] as number[] };
  for (const r of rows) {
    const out = await s.run({ x: { data: r, dims: [1, 3] } });
    got.a.push(...(out.a.data as Float32Array));
    got.b.push(...(out.b.data as Float32Array));
  }
  // row j of the result picks column j of the stored [2, 3] matrix; B (canonical [3, 2], stored transposed) has the
  // same stored layout as A
  assert.deepEqual(got.a, [1, 3.25, -2, -0.125, 0.5, 96]);
  assert.deepEqual(got.b, got.a);
});

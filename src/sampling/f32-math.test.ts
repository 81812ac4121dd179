import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fma32, logLane, sinCosLane } from './f32-math.ts';

test('fma32 rounds a·b + c once, where a double sum then float32 rounding would round twice', () => {
  // a·b = 2^-24 + 2^-60 exactly; 1 + a·b rounds in double to the float32 midpoint 1 + 2^-24
  const a = 1 + 2 ** -12;
  const b = (1 - 4095 * 2 ** -24) * 2 ** -24;
  assert.equal(Math.fround(a * b + 1), 1); // the naive double-rounded answer
  assert.equal(fma32(a, b, 1), 1 + 2 ** -23);
  assert.equal(fma32(a, -b, -1), -(1 + 2 ** -23));
  assert.equal(fma32(3, 5, 7), 22);
});

test('the AVX2 log / sincos lanes stay within a few float32 ulps of the true functions', () => {
  for (let i = 1; i <= 4096; i++) {
    const u = Math.fround(i / 4096);
    const l = logLane(u);
    assert.ok(Math.abs(l - Math.log(u)) <= 4 * 2 ** -23 * Math.max(Math.abs(Math.log(u)), 2 ** -10), `log(${u}) = ${l}`);
    const theta = Math.fround(Math.fround(2 * Math.PI) * Math.fround((i - 1) / 4096));
    const [s, c] = sinCosLane(theta);
    assert.ok(Math.abs(s - Math.sin(theta)) < 3e-7 && Math.abs(c - Math.cos(theta)) < 3e-7, `sincos(${theta}) = ${s}, ${c}`);
  }
});

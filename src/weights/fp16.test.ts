import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './fp16.ts';

test('f16ToF32 known values', () => {
  const h = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x7c00, 0xfc00, 0x0000, 0x8000, 0x3555]);
  const f = f16ToF32(h);
  assert.deepEqual(Array.from(f.slice(0, 9)), [1, -2, 65504, 2 ** -24, 2 ** -14, Infinity, -Infinity, 0, -0]);
  assert.equal(f[9], 0.333251953125);
  assert.ok(Number.isNaN(f16ToF32(new Uint16Array([0x7e00]))[0]));
});

test('f32ToF16 inverts f16ToF32 for every non-NaN half', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = f32ToF16(f16ToF32(all));
  for (let i = 0; i < 65536; i++) {
    const isNaN = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
    if (isNaN) assert.ok((back[i] & 0x7c00) === 0x7c00 && (back[i] & 0x3ff) !== 0);
    else if (back[i] !== i) assert.fail(`half 0x${i.toString(16)} → 0x${back[i].toString(16)}`);
  }
});

test('f32ToF16 rounds to nearest even, overflows to inf, underflows to 0', () => {
  const ulp = 2 ** -10; // spacing of halves in [1, 2)
  const x = new Float32Array([
    1 + ulp / 2, // tie → even (1.0)
    1 + 1.5 * ulp, // tie → even (1 + 2ulp)
    1 + ulp / 2 + 2 ** -20, // above tie → up
    65520, // tie between 65504 and 65536 → inf
    65519,
    2 ** -25, // tie between 0 and the smallest subnormal → 0
    2 ** -25 * 1.5, // → smallest subnormal
    1e-10,
    -3.14159,
  ]);
  const h = Array.from(f32ToF16(x));
  assert.deepEqual(h.slice(0, 8), [0x3c00, 0x3c02, 0x3c01, 0x7c00, 0x7bff, 0x0000, 0x0001, 0x0000]);
  assert.equal(f16ToF32(new Uint16Array([h[8]]))[0], -3.140625);
});

test('bf16 round trip and rounding', () => {
  const x = new Float32Array([1, -2.5, 3.140625, 1 + 2 ** -8, 1 + 3 * 2 ** -8]);
  const back = bf16ToF32(f32ToBf16(x));
  assert.deepEqual(Array.from(back), [1, -2.5, 3.140625, 1, 1 + 2 ** -6]);
});

/**
 * Float32 arithmetic that reproduces, lane by lane, the AVX2 `log256_ps` / `sincos256_ps` polynomials that
 * PyTorch's CPU `normal_fill_16_AVX2` uses (Cephes-derived, via pytorch `aten/src/ATen/native/cpu/avx_mathfun.h`),
 * including the multiply-adds that GCC contracts into FMA instructions when that file is built with -mfma.
 * Every operation rounds to float32 exactly like the hardware: a single +, −, ×, √ done in double and then rounded
 * to float32 is correctly rounded (53 ≥ 2·24 + 2), and `fma32` handles the one case where double rounding could bite.
 */

const fr = Math.fround;

/** correctly rounded float32 fused multiply-add a·b + c (a, b, c float32 values) */
export function fma32(a: number, b: number, c: number): number {
  const p = a * b; // exact: 24 + 24 bits fit in a double
  const s = p + c;
  // exact error of the double sum (Knuth two-sum): p + c = s + err
  const bb = s - p;
  const err = p - (s - bb) + (c - bb);
  const r = fr(s);
  if (err === 0 || r === s) return r;
  // s lies strictly between two floats; double rounding only matters when s sits exactly on a float midpoint
  const other = r > s ? nextDown32(r) : nextUp32(r);
  const mid = (r + other) / 2;
  if (mid !== s) return r;
  // the exact value is on the side of `err`
  return err > 0 ? Math.max(r, other) : Math.min(r, other);
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export function floatToBits(x: number): number {
  f32buf[0] = x;
  return u32buf[0];
}

export function bitsToFloat(b: number): number {
  u32buf[0] = b >>> 0;
  return f32buf[0];
}

function nextUp32(x: number): number {
  if (x === 0) return bitsToFloat(1);
  const b = floatToBits(x);
  return bitsToFloat(x > 0 ? b + 1 : b - 1);
}

function nextDown32(x: number): number {
  return -nextUp32(-x);
}

// ---- constants of avx_mathfun.h, as float32 ----
const SQRTHF = fr(0.707106781186547524);
const LOG_P = [
  7.0376836292e-2, -1.151461031e-1, 1.167699874e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
  2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
].map(fr);
const LOG_Q1 = fr(-2.1219444e-4);
const LOG_Q2 = fr(0.693359375);

const DP1 = fr(-0.78515625);
const DP2 = fr(-2.4187564849853515625e-4);
const DP3 = fr(-3.77489497744594108e-8);
const SIN_P = [-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1].map(fr);
const COS_P = [2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2].map(fr);
const FOPI = fr(1.27323954473516);

/** one lane of `log256_ps(x)` for a positive normal float32 x (the only inputs normal_fill gives it) */
export function logLane(x: number): number {
  const bits = floatToBits(Math.max(x, bitsToFloat(0x00800000)));
  let e = fr(((bits >>> 23) - 0x7f) + 1);
  let m = bitsToFloat((bits & ~0x7f800000) | floatToBits(0.5)); // mantissa in [0.5, 1)
  const below = m < SQRTHF;
  const tmp0 = below ? m : 0;
  m = fr(m - 1);
  if (below) e = fr(e - 1);
  m = fr(m + tmp0);
  const z = fr(m * m);
  let y = LOG_P[0];
  for (let k = 1; k < LOG_P.length; k++) y = fma32(y, m, LOG_P[k]); // Horner step y·x + p_k, contracted
  y = fr(y * m);
  y = fma32(y, z, fr(e * LOG_Q1)); // (y·z) + e·q1: the first product is the one fused
  y = fr(y - fr(z * 0.5));
  const s = fr(m + y);
  return fma32(e, LOG_Q2, s);
}

/** one lane of `sincos256_ps(x)` for x ≥ 0 (theta = 2π·u), returned as [sin, cos] */
export function sinCosLane(x: number): [number, number] {
  const ax = Math.abs(x);
  let j = Math.trunc(fr(ax * FOPI));
  j = (j + 1) & ~1;
  const y = j; // exact small integer
  const swapSin = (j & 4) !== 0;
  const sinFromSinPoly = (j & 2) === 0; // else the two polynomials swap roles
  let r = fma32(y, DP1, ax);
  r = fma32(y, DP2, r);
  r = fma32(y, DP3, r);
  const signCos = ((~(j - 2)) & 4) !== 0;
  const z = fr(r * r);
  // cosine polynomial
  let c = fma32(COS_P[0], z, COS_P[1]);
  c = fma32(c, z, COS_P[2]);
  c = fr(c * z);
  c = fma32(c, z, -fr(z * 0.5)); // (c·z) − z/2, the first product fused
  c = fr(c + 1);
  // sine polynomial
  let s = fma32(SIN_P[0], z, SIN_P[1]);
  s = fma32(s, z, SIN_P[2]);
  s = fr(s * z);
  s = fma32(s, r, r);
  let sinV = sinFromSinPoly ? s : c;
  let cosV = sinFromSinPoly ? c : s;
  if (swapSin !== x < 0) sinV = -sinV;
  if (signCos) cosV = -cosV;
  return [sinV, cosV];
}

/**
 * The benchmark's one seeded generator: xorshift32 (Marsaglia 2003, shifts 13/17/5). Benchmark data only: random
 * inputs and weights whose shapes matter for timing, not their statistics. The same seed gives the same numbers in
 * every bench file (and across runs, so cached reference outputs stay comparable).
 */

/** Next-value function of an xorshift32 stream: uint32 values; seed 0 is replaced by 1 (xorshift needs a non-zero state). */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

/** Uniform in [0, 1). */
export function uniform01(seed: number): () => number {
  const next = xorshift32(seed);
  return () => next() / 4294967296;
}

/** Fills `a` with uniform values in [−scale, scale); returns `a`. */
export function uniformFill(a: Float32Array, seed: number, scale = 1): Float32Array {
  const next = xorshift32(seed);
  for (let i = 0; i < a.length; i++) a[i] = (next() / 2147483648 - 1) * scale;
  return a;
}

/** n uniform values in [−scale, scale). */
export function uniform(n: number, seed: number, scale = 1): Float32Array {
  return uniformFill(new Float32Array(n), seed, scale);
}

/**
 * A bit-exact port of PyTorch 1.13's CPU generator: `torch.Generator().manual_seed(seed)` followed by
 * `torch.randn(shape, generator=g)` / `torch.rand(shape, generator=g)` (float32).
 * Sources (facts learned, not code copied): pytorch `aten/src/ATen/core/MT19937RNGEngine.h` (mt19937, seeded with the
 * low 32 bits of the seed), `core/DistributionsHelper.h` + `core/TransformationHelper.h` (uniform / Box–Muller with a
 * cached second sample), `native/cpu/DistributionTemplates.h` (`normal_fill_AVX2` for float tensors of ≥ 16 elements).
 */
import { AtelierError } from '../contract/errors.ts';
import { logLane, sinCosLane } from './f32-math.ts';

/** What the samplers and pipelines need from a random source: standard-normal float32 draws of a given size. */
export interface NoiseSource {
  randn(numel: number): Float32Array;
}

/** A full snapshot of the generator (plain data, safe to structured-clone across threads). */
export interface TorchGeneratorState {
  seed: number;
  /** mt19937 state words */
  mt: Uint32Array;
  /** index of the next state word to temper */
  next: number;
  /** draws left before the next twist */
  left: number;
  /** Box–Muller's cached second double sample of the scalar path, or null */
  nextDoubleNormal: number | null;
}

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UMASK = 0x80000000;
const LMASK = 0x7fffffff;
const TWO_POW_32 = 4294967296;
const TWO_PI_F32 = Math.fround(2 * Math.PI);
const fr = Math.fround;

export class TorchGenerator implements NoiseSource {
  private seedValue: number;
  private mt = new Uint32Array(N);
  private next = 0;
  private left = 1;
  private nextDoubleNormal: number | null = null;

  /** `seed`: an integer 0 … 2^53−1 (like PyTorch, only its low 32 bits seed mt19937) */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new AtelierError('INTERNAL', `seed must be an integer in 0 … 2^53-1, got ${seed}`); // an engine invariant: the contract checks it
    }
    this.seedValue = seed;
    const mt = this.mt;
    mt[0] = seed % TWO_POW_32;
    for (let j = 1; j < N; j++) {
      const prev = mt[j - 1];
      mt[j] = Math.imul(1812433253, prev ^ (prev >>> 30)) + j;
    }
  }

  /** the seed this generator was created with (or restored from) */
  get seed(): number {
    return this.seedValue;
  }

  /** a copy of the full state; assigning one restores it (the stream then continues identically) */
  get state(): TorchGeneratorState {
    return {
      seed: this.seedValue,
      mt: this.mt.slice(),
      next: this.next,
      left: this.left,
      nextDoubleNormal: this.nextDoubleNormal,
    };
  }

  set state(s: TorchGeneratorState) {
    if (s.mt.length !== N) throw new AtelierError('INTERNAL', `generator state needs ${N} words, got ${s.mt.length}`);
    this.seedValue = s.seed;
    this.mt.set(s.mt);
    this.next = s.next;
    this.left = s.left;
    this.nextDoubleNormal = s.nextDoubleNormal;
  }

  /** next raw 32-bit output of mt19937 (`CPUGeneratorImpl::random()`) */
  nextUint32(): number {
    if (--this.left === 0) this.twist();
    let y = this.mt[this.next++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** uniform double in [0, 1) from `random64()` (first draw = high word), 53 random bits */
  private uniformDouble(): number {
    const hi = this.nextUint32();
    const lo = this.nextUint32();
    return ((hi & 0x1fffff) * TWO_POW_32 + lo) / 9007199254740992;
  }

  /** uniform float32 in [0, 1) from one `random()` draw, 24 random bits */
  private uniformFloat(): number {
    return (this.nextUint32() & 0xffffff) / 16777216;
  }

  /** `torch.rand(numel, generator=g)` as float32 */
  rand(numel: number): Float32Array {
    const out = new Float32Array(numel);
    for (let i = 0; i < numel; i++) out[i] = this.uniformFloat();
    return out;
  }

  /** `torch.randn(numel, generator=g)` as float32 (any shape with that many elements: the draw is flat) */
  randn(numel: number): Float32Array {
    const out = new Float32Array(numel);
    if (numel >= 16) this.normalFill(out);
    else for (let i = 0; i < numel; i++) out[i] = this.scalarNormal();
    return out;
  }

  /** `normal_fill_AVX2`: uniforms for all elements, Box–Muller within each 16-block, the tail redone on the last 16 */
  private normalFill(data: Float32Array): void {
    const size = data.length;
    for (let i = 0; i < size; i++) data[i] = this.uniformFloat();
    for (let i = 0; i + 16 <= size; i += 16) normal16(data, i);
    if (size % 16 !== 0) {
      const start = size - 16;
      for (let i = 0; i < 16; i++) data[start + i] = this.uniformFloat();
      normal16(data, start);
    }
  }

  /** `at::normal_distribution<double>` (mean 0, std 1) with the generator's cached second sample */
  private scalarNormal(): number {
    if (this.nextDoubleNormal !== null) {
      const v = this.nextDoubleNormal;
      this.nextDoubleNormal = null;
      return v;
    }
    const u1 = this.uniformDouble();
    const u2 = this.uniformDouble();
    const r = Math.sqrt(-2 * Math.log1p(-u2));
    const theta = 2 * Math.PI * u1;
    this.nextDoubleNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  private twist(): void {
    const mt = this.mt;
    this.left = N;
    this.next = 0;
    for (let k = 0; k < N; k++) {
      const y = (mt[k] & UMASK) | (mt[(k + 1) % N] & LMASK);
      mt[k] = mt[(k + M) % N] ^ (y >>> 1) ^ (mt[(k + 1) % N] & 1 ? MATRIX_A : 0);
    }
  }
}

/** Box–Muller on one block of 16 uniforms: pairs (j, j+8), float32 lanes as `normal_fill_16_AVX2` computes them */
function normal16(d: Float32Array, o: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = fr(1 - d[o + j]);
    const u2 = d[o + j + 8];
    const radius = fr(Math.sqrt(fr(-2 * logLane(u1))));
    const theta = fr(TWO_PI_F32 * u2);
    const [s, c] = sinCosLane(theta);
    d[o + j] = fr(radius * c);
    d[o + j + 8] = fr(radius * s);
  }
}

/**
 * Micro-benchmark of onnxruntime's reduced-precision CPU paths for SDXL-shaped MatMuls and 3×3 Convs, one op per
 * session, threads 2: fp32 (constant, prepacked weights) vs MatMulNBits (8/4 bit, blockwise, accuracy_level 4 =
 * int8 compute), DynamicQuantizeMatMul (int8 per-column weights, uint8 per-tensor activations), MatMulInteger +
 * DynamicQuantizeLinear (unfused, optimisation 'basic'), static QLinearMatMul; ConvInteger with dynamic activation
 * quantisation and static QLinearConv. Op schemas: onnxruntime docs/ContribOperators.md and the ONNX operator docs.
 * Prints GFLOP/s (best of --runs rounds after a warm-up; the cases of one shape run round-robin) and each path's error
 * against the fp32 output.
 *
 *   node --import tsx bench/quant-matmul.ts [--runs 3] [--only matmul|conv] [--cases regex] [--shapes 0,1,...,c0,c1]
 *        [--outliers 10]   (--runs 0: fidelity only)
 */
import os from 'node:os';
import { Session } from '../src/onnx/session.ts';
import { quantizeBlockwise, quantizeInt8PerColumn, quantizeInt8PerRow } from '../src/quant/quantizers.ts';
import { MiniModel } from './quant-mini-model.ts';
import { uniform01 as rng } from './random.ts';

const MS = 'com.microsoft';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

/** Outlier factor of every 50th activation channel (--outliers, default 10; 1 = plain Gaussian). */
const OUTLIER = Number(arg('outliers', '10'));

/** Activations ~ N(0, 1) with every 50th channel (last axis, size `ch`) ×OUTLIER, like the outlier features of LayerNorm outputs. */
function activations(n: number, ch: number, seed: number, channelStride = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
    const c = Math.floor(i / channelStride) % ch;
    a[i] = c % 50 === 0 ? OUTLIER * g : g;
  }
  return a;
}

function weights(n: number, fanIn: number, seed: number): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  const s = Math.sqrt(3 / fanIn);
  for (let i = 0; i < n; i++) a[i] = (2 * r() - 1) * s;
  return a;
}

function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
  return t;
}

function absMax(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

interface Case {
  name: string;
  model: Uint8Array;
  optimization?: 'basic' | 'extended' | 'all';
}

interface Result {
  name: string;
  bestS: number;
  gflops: number;
  relErr: number;
  maxErrOverStd: number;
  note?: string;
}

/** Adds the benchmark outputs: Y (full, fetched once for fidelity) and a cheap ReduceSum fetched in timed runs. */
function finish(m: MiniModel, y: string): Uint8Array {
  m.node('Identity', [y], {}, { outputs: ['Y'] });
  m.node('ReduceSum', [y], { keepdims: 0 }, { outputs: ['S'] });
  m.output('Y');
  m.output('S');
  return m.build();
}

function compare(y: Float32Array, ref: Float32Array): { relErr: number; maxErrOverStd: number } {
  let num = 0;
  let den = 0;
  let maxE = 0;
  let mean = 0;
  for (let i = 0; i < ref.length; i++) mean += ref[i];
  mean /= ref.length;
  let varSum = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = y[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
    maxE = Math.max(maxE, Math.abs(d));
    varSum += (ref[i] - mean) ** 2;
  }
  return { relErr: Math.sqrt(num / den), maxErrOverStd: maxE / Math.sqrt(varSum / ref.length) };
}

/** MatMul cases for A [2, M/2, K] × W [N, K]ᵀ (canonical Linear weight [out, in]). */
function matmulCases(M: number, K: number, N: number, w: Float32Array, aSample: Float32Array): Case[] {
  const dims = [2, M / 2, K];
  const cases: Case[] = [];
  const base = () => {
    const m = new MiniModel();
    m.input('A', 'float32', dims);
    return m;
  };
  {
    const m = base();
    const b = m.init('float32', [K, N], transpose(w, N, K));
    cases.push({ name: 'fp32 MatMul', model: finish(m, m.node('MatMul', ['A', b])[0]) });
  }
  {
    const m = base();
    const b = m.init('float32', [N, K], w);
    cases.push({ name: 'fp32 FusedMatMul transB', model: finish(m, m.node('FusedMatMul', ['A', b], { transB: 1 }, { domain: MS })[0]) });
  }
  for (const [bits, bs, acc] of [[8, 32, 4], [8, 64, 4], [8, 128, 4], [8, 256, 4], [4, 32, 4], [4, 128, 4], [8, 128, 0]] as const) {
    const m = base();
    const q = quantizeBlockwise(w, N, K, bits, bs);
    const B = m.init('uint8', [N, q.kBlocks, q.blobSize], q.packed);
    const S = m.init('float32', [N, q.kBlocks], q.scales);
    const y = m.node('MatMulNBits', ['A', B, S], { K, N, bits, block_size: bs, accuracy_level: acc }, { domain: MS })[0];
    cases.push({ name: `MatMulNBits b${bits} bs${bs} acc${acc}`, model: finish(m, y) });
  }
  const q8 = quantizeInt8PerColumn(w, N, K);
  {
    const m = base();
    const B = m.init('int8', [K, N], q8.q);
    const S = m.init('float32', [N], q8.scale);
    cases.push({ name: 'DynamicQuantizeMatMul s8', model: finish(m, m.node('DynamicQuantizeMatMul', ['A', B, S], {}, { domain: MS })[0]) });
  }
  for (const opt of ['basic', 'all'] as const) {
    const m = base();
    const B = m.init('int8', [K, N], q8.q);
    const S = m.init('float32', [N], q8.scale);
    const [aq, as, az] = m.node('DynamicQuantizeLinear', ['A'], {}, { numOutputs: 3 });
    const acc = m.node('MatMulInteger', [aq, B, az])[0];
    const f = m.node('Cast', [acc], { to: 1 })[0];
    const y = m.node('Mul', [m.node('Mul', [f, as])[0], S])[0];
    cases.push({ name: `DQL+MatMulInteger+Cast+Mul (${opt})`, model: finish(m, y), optimization: opt });
  }
  {
    // static: activation scale/zero point calibrated on this very input (best case for static quantisation)
    const m = base();
    const aMax = absMax(aSample);
    const aScale = (2 * aMax) / 255;
    const xs = m.init('float32', [], Float32Array.of(aScale));
    const xz = m.init('uint8', [], Uint8Array.of(128));
    const B = m.init('int8', [K, N], q8.q);
    const S = m.init('float32', [N], q8.scale);
    const bz = m.init('int8', [N], new Int8Array(N));
    const aq = m.node('QuantizeLinear', ['A', xs, xz])[0];
    const y = m.node('MatMulIntegerToFloat', [aq, B, xs, S, xz, bz], {}, { domain: MS })[0];
    cases.push({ name: 'static MatMulIntegerToFloat', model: finish(m, y) });
  }
  return cases;
}

/** 3×3 conv cases, x [B, C, H, W], w [C, C, 3, 3]. */
function convCases(B: number, C: number, H: number, w: Float32Array, bias: Float32Array, yRange: number, xSample: Float32Array): Case[] {
  const cases: Case[] = [];
  const attrs = { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] };
  const base = () => {
    const m = new MiniModel();
    m.input('X', 'float32', [B, C, H, H]);
    return m;
  };
  for (const opt of ['all', 'extended'] as const) {
    const m = base();
    const W = m.init('float32', [C, C, 3, 3], w);
    const b = m.init('float32', [C], bias);
    cases.push({ name: `fp32 Conv (${opt})`, model: finish(m, m.node('Conv', ['X', W, b], attrs)[0]), optimization: opt });
  }
  const q = quantizeInt8PerRow(w, C, C * 9);
  {
    // ConvInteger (CPU: uint8 × uint8, per-tensor zero points): symmetric per-channel int8 weights stored +128
    const m = base();
    const wu8 = Uint8Array.from(q.q, (v) => v + 128);
    const W = m.init('uint8', [C, C, 3, 3], wu8);
    const wz = m.init('uint8', [], Uint8Array.of(128));
    const ws = m.init('float32', [1, C, 1, 1], q.scale);
    const b = m.init('float32', [1, C, 1, 1], bias);
    const [xq, xs, xz] = m.node('DynamicQuantizeLinear', ['X'], {}, { numOutputs: 3 });
    const acc = m.node('ConvInteger', [xq, W, xz, wz], attrs)[0];
    const f = m.node('Cast', [acc], { to: 1 })[0];
    const y = m.node('Add', [m.node('Mul', [m.node('Mul', [f, xs])[0], ws])[0], b])[0];
    cases.push({ name: 'DQL+ConvInteger u8u8', model: finish(m, y) });
  }
  {
    // static QLinearConv: input and output scales calibrated on this input (best case), int8 per-channel weights
    const m = base();
    const xMax = absMax(xSample);
    const xScale = (2 * xMax) / 255;
    const yScale = (2 * yRange) / 255;
    const xs = m.init('float32', [], Float32Array.of(xScale));
    const xz = m.init('uint8', [], Uint8Array.of(128));
    const W = m.init('int8', [C, C, 3, 3], q.q);
    const ws = m.init('float32', [C], q.scale);
    const wz = m.init('int8', [C], new Int8Array(C));
    const ys = m.init('float32', [], Float32Array.of(yScale));
    const yz = m.init('uint8', [], Uint8Array.of(128));
    const bq = m.init('int32', [C], Int32Array.from(bias, (v, i) => Math.round(v / (xScale * q.scale[i]))));
    const xq = m.node('QuantizeLinear', ['X', xs, xz])[0];
    const yq = m.node('QLinearConv', [xq, xs, xz, W, ws, wz, ys, yz, bq], attrs)[0];
    const y = m.node('DequantizeLinear', [yq, ys, yz])[0];
    cases.push({ name: 'static QLinearConv u8s8', model: finish(m, y) });
  }
  return cases;
}

function print(r: Result): void {
  if (!Number.isFinite(r.bestS)) {
    console.log(`  ${r.name.padEnd(38)} (not timed)   ${r.relErr ? `rel ${r.relErr.toExponential(2)}  max/std ${r.maxErrOverStd.toExponential(2)}` : 'reference'}`);
    return;
  }
  const err = r.relErr ? `rel ${r.relErr.toExponential(2)}  max/std ${r.maxErrOverStd.toExponential(2)}` : 'reference';
  console.log(`  ${r.name.padEnd(38)} ${r.bestS.toFixed(3).padStart(7)} s  ${r.gflops.toFixed(1).padStart(6)} GFLOP/s   ${err}${r.note ? `  ${r.note}` : ''}`);
}

/**
 * All cases of one shape, round-robin: every round runs each session once, and each case keeps its best time, so
 * that other work on the machine (shared cores) hits every case alike.
 */
async function runAll(label: string, cases: Case[], feeds: Record<string, { data: Float32Array; dims: number[] }>, flops: number, runs: number, filter: RegExp): Promise<void> {
  console.log(`${label}  (${(flops / 1e9).toFixed(1)} GFLOP, load ${os.loadavg()[0].toFixed(2)})`);
  const live: { c: Case; s: Session; times: number[]; err: { relErr: number; maxErrOverStd: number } | null }[] = [];
  let ref: Float32Array | null = null;
  for (const [i, c] of cases.entries()) {
    if (i > 0 && !filter.test(c.name)) continue;
    try {
      const s = await Session.create(c.model, { threads: 2, optimization: c.optimization ?? 'all', label: c.name });
      const y = (await s.run(feeds, ['Y'])).Y.data as Float32Array; // warm-up + fidelity
      const err = ref ? compare(y, ref) : null;
      if (!ref) ref = y;
      live.push({ c, s, times: [], err });
    } catch (e) {
      console.log(`  ${c.name.padEnd(38)} FAILED: ${(e as Error).message.split('\n')[0].slice(0, 160)}`);
    }
  }
  const rounds = Math.min(40, Math.max(runs, Math.ceil((runs * 20e9) / flops))); // small shapes: more rounds
  for (let r = 0; r < rounds; r++) {
    for (const l of live) {
      const t0 = performance.now();
      await l.s.run(feeds, ['S']);
      l.times.push((performance.now() - t0) / 1000);
    }
  }
  const refBest = Math.min(...live[0].times);
  for (const l of live) {
    const best = Math.min(...l.times);
    const r: Result = { name: l.c.name, bestS: best, gflops: flops / best / 1e9, relErr: l.err?.relErr ?? 0, maxErrOverStd: l.err?.maxErrOverStd ?? 0 };
    if (l !== live[0]) r.note = `×${(refBest / best).toFixed(2)}`;
    print(r);
    await l.s.release();
  }
  console.log(`  (${rounds} rounds; load after: ${os.loadavg()[0].toFixed(2)})`);
}

const MATMUL_SHAPES: [number, number, number, string][] = [
  [8192, 640, 640, '1024² level 1, attn q/k/v/o'],
  [8192, 640, 5120, '1024² level 1, ff.net.0.proj'],
  [8192, 2560, 640, '1024² level 1, ff.net.2'],
  [2048, 1280, 1280, '512² level 1 ×2 / 1024² level 2, C=1280'],
  [2048, 1280, 10240, '1024² level 2, ff.net.0.proj'],
  [512, 1280, 1280, '512² level 2, attn'],
  [512, 1280, 10240, '512² level 2, ff.net.0.proj'],
  [512, 5120, 1280, '512² level 2, ff.net.2'],
];
const CONV_SHAPES: [number, number, number, string][] = [
  [2, 640, 64, '1024² level 1 resnet conv'],
  [2, 1280, 16, '512² level 2 resnet conv'],
  [2, 320, 64, '512² level 0 resnet conv'],
];

async function main(): Promise<void> {
  const runs = Number(arg('runs', '3'));
  const only = arg('only', '');
  const filter = new RegExp(arg('cases', '.'));
  const pick = arg('shapes', '');
  console.log(`onnxruntime CPU, threads 2, ${os.cpus().length} cores (${os.cpus()[0]?.model}); best of ${runs} round-robin rounds after a warm-up; activation outlier channels ×${OUTLIER}`);
  if (only !== 'conv') {
    for (const [i, [M, K, N, what]] of MATMUL_SHAPES.entries()) {
      if (pick && !pick.split(',').includes(String(i))) continue;
      const w = weights(N * K, K, 1000 + i);
      const a = activations(M * K, K, 2000 + i);
      await runAll(`MatMul M=${M} K=${K} N=${N}  [${what}]`, matmulCases(M, K, N, w, a), { A: { data: a, dims: [2, M / 2, K] } }, 2 * M * K * N, runs, filter);
    }
  }
  if (only !== 'matmul') {
    for (const [i, [B, C, H, what]] of CONV_SHAPES.entries()) {
      if (pick && !pick.split(',').includes(`c${i}`)) continue;
      const w = weights(C * C * 9, C * 9, 3000 + i);
      const bias = weights(C, C, 4000 + i);
      const x = activations(B * C * H * H, C, 5000 + i, H * H);
      // yRange for the static case: a conservative 6σ of the output (σ ≈ ‖x‖·‖w_row‖ over channels)
      const yRange = 6 * Math.sqrt(3 / (C * 9)) / Math.sqrt(3) * Math.sqrt(C * 9) * Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
      await runAll(`Conv3x3 B=${B} C=${C} ${H}×${H}  [${what}]`, convCases(B, C, H, w, bias, yRange, x), { X: { data: x, dims: [B, C, H, H] } }, 2 * B * H * H * C * C * 9, runs, filter);
    }
  }
}

await main();

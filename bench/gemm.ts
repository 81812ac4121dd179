/**
 * The CPU's fp32 GEMM throughput as onnxruntime delivers it: [M, K]·[K, N] with constant (prepacked) weights,
 * as plain MatMul and in the FusedMatMul transB form our Linear layers use ([N, K] weight). The graph chains
 * CHAIN products ([M, K]→[M, N]→[M, K]→…) and returns only their sum: a single product's 84 MB output, copied
 * into a fresh JS buffer, would otherwise cost as much as the product (measured: 110 vs 340 GFLOP/s).
 */
import { GraphBuilder, MS_DOMAIN } from '../src/onnx/graph.ts';
import { Session } from '../src/onnx/session.ts';

export interface GemmResult {
  shape: string;
  gflops: number;
  bestS: number;
  runsS: number[];
  fusedTransBGflops: number;
}

function seeded(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = (s >>> 0) / 4294967296 - 0.5;
  }
  return a;
}

async function timeGraph(g: GraphBuilder, a: Float32Array, dims: number[], settings: { threads: number; optimization?: 'all' | 'extended'; prepacking?: boolean }, runs: number): Promise<number[]> {
  const session = await Session.create(g.build('/'), { ...settings, label: 'gemm' });
  try {
    await session.run({ a: { data: a, dims } }); // warm-up
    const times: number[] = [];
    for (let r = 0; r < runs; r++) {
      const t = performance.now();
      await session.run({ a: { data: a, dims } });
      times.push((performance.now() - t) / 1000);
    }
    return times;
  } finally {
    await session.release();
  }
}

const CHAIN = 4;

function chainGraph(name: string, m: number, k: number, n: number, fused: boolean): GraphBuilder {
  const g = new GraphBuilder(name);
  let y = g.input('a', 'float32', [m, k]);
  for (let l = 0; l < CHAIN; l++) {
    const [rows, cols] = l % 2 === 0 ? [k, n] : [n, k]; // this product maps rows → cols features
    if (fused) {
      const w = g.constF32(seeded(rows * cols, 2 + l), [cols, rows]);
      y = g.op('FusedMatMul', [y, w], { transB: 1 }, { domain: MS_DOMAIN }); // [m, cols]
    } else {
      y = g.op('MatMul', [y, g.constF32(seeded(rows * cols, 2 + l), [rows, cols])]); // [m, cols]
    }
  }
  g.output(g.op('ReduceSum', [y], { keepdims: 0 }), 'y', 'float32', []);
  return g;
}

export async function measureGemm(settings: { threads: number; optimization?: 'all' | 'extended'; prepacking?: boolean }, opts: { m?: number; k?: number; n?: number; runs?: number } = {}): Promise<GemmResult> {
  const m = opts.m ?? 4096;
  const k = opts.k ?? 1280;
  const n = opts.n ?? 5120;
  const runs = opts.runs ?? 10;
  const flops = CHAIN * 2 * m * n * k;
  const a = seeded(m * k, 1);
  const plain = await timeGraph(chainGraph('gemm', m, k, n, false), a, [m, k], settings, runs);
  const fused = await timeGraph(chainGraph('gemm_t', m, k, n, true), a, [m, k], settings, runs);
  const best = Math.min(...plain);
  return {
    shape: `${m}x${k} · ${k}x${n} (chain of ${CHAIN} alternating products)`,
    gflops: flops / best / 1e9,
    bestS: best,
    runsS: plain,
    fusedTransBGflops: flops / Math.min(...fused) / 1e9,
  };
}

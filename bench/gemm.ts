/**
 * The CPU's fp32 GEMM throughput as onnxruntime delivers it: [M, K]·[K, N] with constant (prepacked) weights,
 * as plain MatMul and in the FusedMatMul transB form our Linear layers use ([N, K] weight). The graph chains
 * CHAIN products ([M, K]→[M, N]→[M, K]→…) and returns only their sum: a single product's 84 MB output, copied
 * into a fresh JS buffer, would otherwise cost as much as the product (measured: 110 vs 340 GFLOP/s).
 */
import { GraphBuilder, MS_DOMAIN } from '../src/onnx/graph.ts';
import { Session } from '../src/onnx/session.ts';
import { uniform } from './random.ts';

export interface GemmResult {
  shape: string;
  gflops: number;
  bestS: number;
  runsS: number[];
  fusedTransBGflops: number;
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
      const w = g.constF32(uniform(rows * cols, 2 + l, 0.5), [cols, rows]);
      y = g.op('FusedMatMul', [y, w], { transB: 1 }, { domain: MS_DOMAIN }); // [m, cols]
    } else {
      y = g.op('MatMul', [y, g.constF32(uniform(rows * cols, 2 + l, 0.5), [rows, cols])]); // [m, cols]
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
  const a = uniform(m * k, 1, 0.5);
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

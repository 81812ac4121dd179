/** Command-line flags of `npm run bench` (see bench/bench.ts for what each part measures). */
import os from 'node:os';
import path from 'node:path';

/** Measurable parts; `--only` picks a subset. */
export const PARTS = ['gemm', 'load', 'text', 'unet', 'vae', 'img2img', 'lora', 'plain', '1024', 'fp16', 'fp16-1024', 'int8', 'int8-1024', 'int8-full', 'vae-int8', 'fastest', 'oneshot-1024', 'tiny'] as const;
export type Part = (typeof PARTS)[number];

export interface BenchOptions {
  parts: Set<Part>;
  quick: boolean;
  threads: number;
  /** undefined = the product's default (what openModel/Session use without an explicit setting) */
  optimization?: 'all' | 'extended';
  prepacking?: boolean;
  /** timed runs of each UNet measurement after the warm-up */
  runs: number;
  benchDir: string;
  /** full-size random SDXL diffusers folder (generated when missing) */
  modelDir: string;
  /** longest wait (s) for other heavy processes to finish before a full-size phase */
  maxWaitS: number;
  /** child mode: run one phase and print `RESULT {json}` */
  phase?: string;
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value`);
  return v;
}

export function parseBenchArgs(argv: string[]): BenchOptions {
  const known = new Set(['only', 'quick', 'threads', 'optimization', 'prepacking', 'runs', 'max-wait', 'phase', 'help']);
  for (const a of argv) {
    if (a.startsWith('--') && !known.has(a.slice(2))) throw new Error(`unknown flag ${a}; known: ${[...known].map((k) => `--${k}`).join(' ')}`);
  }
  const quick = argv.includes('--quick');
  const only = flag(argv, 'only');
  const parts = new Set<Part>();
  for (const p of only ? only.split(',').map((s) => s.trim()).filter(Boolean) : PARTS) {
    if (!(PARTS as readonly string[]).includes(p)) throw new Error(`--only: unknown part "${p}"; parts: ${PARTS.join(',')}`);
    parts.add(p as Part);
  }
  if (quick) {
    parts.delete('1024');
    parts.delete('fp16-1024');
    parts.delete('int8-1024');
    parts.delete('oneshot-1024');
  }
  const threads = Number(flag(argv, 'threads') ?? '2');
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads must be a positive integer, got ${flag(argv, 'threads')}`);
  const opt = flag(argv, 'optimization');
  if (opt !== undefined && opt !== 'all' && opt !== 'extended') throw new Error(`--optimization must be all or extended, got "${opt}"`);
  const pp = flag(argv, 'prepacking');
  if (pp !== undefined && pp !== 'on' && pp !== 'off') throw new Error(`--prepacking must be on or off, got "${pp}"`);
  const runs = Number(flag(argv, 'runs') ?? '2');
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${flag(argv, 'runs')}`);
  const benchDir = path.resolve(process.env.ATELIER_BENCH_DIR ?? './data/bench');
  const modelDir = path.resolve(process.env.ATELIER_BENCH_MODEL ?? path.join(benchDir, 'sdxl-base-random-fp32'));
  return {
    parts,
    quick,
    threads,
    optimization: opt as BenchOptions['optimization'],
    prepacking: pp === undefined ? undefined : pp === 'on',
    runs,
    benchDir,
    modelDir,
    maxWaitS: Number(flag(argv, 'max-wait') ?? '3600'),
    phase: flag(argv, 'phase'),
  };
}

/** Flags a child phase needs (same settings as the parent). */
export function childArgs(o: BenchOptions): string[] {
  const a = ['--threads', String(o.threads), '--runs', String(o.runs), '--only', [...o.parts].join(',')];
  if (o.optimization) a.push('--optimization', o.optimization);
  if (o.prepacking !== undefined) a.push('--prepacking', o.prepacking ? 'on' : 'off');
  return a;
}

/** Session settings passed to every network (unset fields keep the product's defaults). */
export function sessionSettings(o: BenchOptions): { threads: number; optimization?: 'all' | 'extended'; prepacking?: boolean } {
  return {
    threads: o.threads,
    ...(o.optimization ? { optimization: o.optimization } : {}),
    ...(o.prepacking !== undefined ? { prepacking: o.prepacking } : {}),
  };
}

export const HELP = `npm run bench -- [flags]     (prints one JSON object on stdout; progress on stderr)
  --only ${PARTS.join(',')}
  --quick                 skip the 1024² child runs (fp32, fp16, int8, one-shot)
  --threads N             intra-op threads (default 2)
  --optimization all|extended   onnxruntime graph optimisation (default: the product's)
  --prepacking on|off     onnxruntime weight prepacking (default: the product's)
  --runs N                timed UNet runs after the warm-up (default 2)
  --max-wait S            wait at most S seconds for other heavy processes (default 3600)
env ATELIER_BENCH_DIR (default ./data/bench), ATELIER_BENCH_MODEL (full-size model folder; default <bench dir>/sdxl-base-random-fp32)
cpus: ${os.availableParallelism()}
`;

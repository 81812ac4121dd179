/** Command-line flags of `npm run bench` (see bench/bench.ts for what each part measures). */
import os from 'node:os';
import path from 'node:path';
import { optionsHelp, parseOptions, type OptionSpec } from '../src/contract/options.ts';
import { ENGINE_OPTIONS, engineSettingsFrom, type EngineSettings } from '../src/contract/settings.ts';

/** Measurable parts; `--only` picks a subset. */
export const PARTS = ['gemm', 'load', 'text', 'unet', 'vae', 'img2img', 'lora', 'plain', '1024', 'fp16', 'fp16-1024', 'int8', 'int8-1024', 'int8-full', 'vae-int8', 'fastest', 'oneshot-1024', 'tiny'] as const;
export type Part = (typeof PARTS)[number];

export interface BenchOptions {
  parts: Set<Part>;
  quick: boolean;
  /** the engine settings of every phase (a phase varies precision or quantisation from these); threads default 2 */
  engine: EngineSettings;
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

/** The bench's own flags; the engine's (threads, device, weights, …) come from ENGINE_OPTIONS, read by the same parser. */
const BENCH_OPTIONS: readonly OptionSpec[] = [
  { flag: 'only', kind: 'list', help: `parts to run: ${PARTS.join(',')}` },
  { flag: 'quick', kind: 'boolean', help: 'skip the 1024² child runs (fp32, fp16, int8, one-shot)' },
  { flag: 'optimization', kind: 'string', values: ['all', 'extended'], help: "onnxruntime graph optimisation (default: the product's)" },
  { flag: 'prepacking', kind: 'string', values: ['on', 'off'], help: "onnxruntime weight prepacking (default: the product's)" },
  { flag: 'runs', kind: 'integer', min: 1, max: 100, help: 'timed UNet runs after the warm-up (default 2)' },
  { flag: 'max-wait', kind: 'integer', min: 0, max: 86_400, help: 'wait at most S seconds for other heavy processes (default 3600)' },
  { flag: 'phase', kind: 'string', help: 'child mode: run one phase' },
  { flag: 'help', kind: 'boolean', help: 'show this help' },
];

/** Engine flags that make sense for the bench: the model and data folder are its own, and each phase sets its precision. */
const BENCH_ENGINE_OPTIONS = ENGINE_OPTIONS.filter((o) => ['threads', 'device'].includes(o.flag));
const ALL_OPTIONS = [...BENCH_OPTIONS, ...BENCH_ENGINE_OPTIONS];

export function parseBenchArgs(argv: string[], env: Readonly<Record<string, string | undefined>> = {}): BenchOptions {
  const parsed = parseOptions(argv, ALL_OPTIONS, env);
  const v = parsed.values;
  const quick = v.quick === true;
  const only = v.only as string[] | undefined;
  const parts = new Set<Part>();
  for (const p of only ?? PARTS) {
    if (!(PARTS as readonly string[]).includes(p)) throw new Error(`--only: unknown part "${p}"; parts: ${PARTS.join(',')}`);
    parts.add(p as Part);
  }
  if (quick) {
    parts.delete('1024');
    parts.delete('fp16-1024');
    parts.delete('int8-1024');
    parts.delete('oneshot-1024');
  }
  const benchDir = path.resolve(env.ATELIER_BENCH_DIR ?? './data/bench');
  const modelDir = path.resolve(env.ATELIER_BENCH_MODEL ?? path.join(benchDir, 'sdxl-base-random-fp32'));
  const engine = engineSettingsFrom(parsed, process.cwd());
  engine.threads ??= 2;
  engine.models = [{ name: 'bench', path: modelDir }];
  engine.dataDir = benchDir;
  const opt = v.optimization as BenchOptions['optimization'];
  const pp = v.prepacking as string | undefined;
  return {
    parts,
    quick,
    engine,
    threads: engine.threads,
    ...(opt ? { optimization: opt } : {}),
    ...(pp !== undefined ? { prepacking: pp === 'on' } : {}),
    runs: (v.runs as number | undefined) ?? 2,
    benchDir,
    modelDir,
    maxWaitS: (v['max-wait'] as number | undefined) ?? 3600,
    ...(v.phase !== undefined ? { phase: v.phase as string } : {}),
  };
}

/** Flags a child phase needs (same settings as the parent). */
export function childArgs(o: BenchOptions): string[] {
  const a = ['--threads', String(o.threads), '--runs', String(o.runs), '--only', [...o.parts].join(','), '--device', o.engine.device];
  if (o.optimization) a.push('--optimization', o.optimization);
  if (o.prepacking !== undefined) a.push('--prepacking', o.prepacking ? 'on' : 'off');
  return a;
}

/** onnxruntime options the bench may vary beyond the product's (unset = the product's defaults). */
export function sessionTuning(o: BenchOptions): { optimization?: 'all' | 'extended'; prepacking?: boolean } {
  return { ...(o.optimization ? { optimization: o.optimization } : {}), ...(o.prepacking !== undefined ? { prepacking: o.prepacking } : {}) };
}

/** Session settings for the networks a phase builds by hand: the engine's threads and device, and the tuning. */
export function sessionSettings(o: BenchOptions): { threads: number; provider: EngineSettings['device']; optimization?: 'all' | 'extended'; prepacking?: boolean } {
  return { threads: o.threads, provider: o.engine.device, ...sessionTuning(o) };
}

export const HELP = `npm run bench -- [flags]     (prints one JSON object on stdout; progress on stderr)
${optionsHelp(ALL_OPTIONS).join('\n')}
env ATELIER_BENCH_DIR (default ./data/bench), ATELIER_BENCH_MODEL (full-size model folder; default <bench dir>/sdxl-base-random-fp32)
cpus: ${os.availableParallelism()}
`;

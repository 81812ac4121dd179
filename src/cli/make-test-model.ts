/**
 * `atelier make-test-model`: writes a deterministic random SDXL-architecture model, and
 * `ensureDefaultTestModel`: the tiny model the server and CLI use when no checkpoint is given.
 */
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import { makeTestModel } from '../weights/test-model.ts';
import { helpText, parseFlags, type FlagSpec } from './args.ts';

export const MAKE_TEST_MODEL_FLAGS: FlagSpec = {
  out: { type: 'string', help: 'output: the diffusers folder, or for single-file a .safetensors path or a folder (required)' },
  layout: { type: 'string', help: 'diffusers | single-file (default diffusers)' },
  seed: { type: 'number', help: 'seed of the random weights (default 0)' },
  dtype: { type: 'string', help: 'f32 | f16 (default f32)' },
  size: { type: 'string', help: 'tiny | full (full = SDXL base 1.0 architecture, ~14 GB in f32) (default tiny)' },
  help: { type: 'boolean', help: 'show this help' },
};

const LAYOUTS = ['diffusers', 'single-file'] as const;
const DTYPES = { f32: 'F32', f16: 'F16' } as const;
const SIZES = ['tiny', 'full'] as const;

function oneOf<T extends string>(flag: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  const v = String(value).toLowerCase();
  if (!(allowed as readonly string[]).includes(v)) {
    throw new AtelierError('INVALID_INPUT', `--${flag} must be one of ${allowed.join(', ')}; got "${String(value)}"`, { field: flag });
  }
  return v as T;
}

export async function makeTestModelCommand(argv: string[]): Promise<void> {
  const f = parseFlags(argv, MAKE_TEST_MODEL_FLAGS);
  if (f.help) {
    process.stdout.write(helpText('make-test-model', MAKE_TEST_MODEL_FLAGS));
    return;
  }
  if (typeof f.out !== 'string' || f.out === '') throw new AtelierError('INVALID_INPUT', '--out is required', { field: 'out' });
  const seed = f.seed === undefined ? 0 : Number(f.seed);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new AtelierError('INVALID_INPUT', `--seed must be a non-negative integer; got "${String(f.seed)}"`, { field: 'seed' });
  const layout = oneOf('layout', f.layout, LAYOUTS, 'diffusers');
  const dtype = DTYPES[oneOf('dtype', f.dtype, Object.keys(DTYPES) as (keyof typeof DTYPES)[], 'f32')];
  const size = oneOf('size', f.size, SIZES, 'tiny');
  const started = Date.now();
  const out = await makeTestModel({ outDir: f.out, layout, seed, dtype, size });
  process.stdout.write(`wrote ${size} ${layout} ${dtype} test model (seed ${seed}) to ${out} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}

export const DEFAULT_TEST_MODEL_NAME = 'atelier-tiny-sdxl';

/**
 * `dataDir/models/atelier-tiny-sdxl` (diffusers layout, seed 0), created when absent. Written into
 * a temporary folder and renamed, so an interrupted run never leaves a partial model behind.
 */
export async function ensureDefaultTestModel(dataDir: string): Promise<string> {
  const models = path.resolve(dataDir, 'models');
  const target = path.join(models, DEFAULT_TEST_MODEL_NAME);
  if (await stat(path.join(target, 'model_index.json')).then(() => true, () => false)) return target;
  await mkdir(models, { recursive: true });
  const tmp = path.join(models, `.${DEFAULT_TEST_MODEL_NAME}.tmp-${process.pid}-${Date.now()}`);
  try {
    await makeTestModel({ outDir: tmp, layout: 'diffusers', seed: 0, size: 'tiny' });
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    // another process may have won the race
    if (await stat(path.join(target, 'model_index.json')).then(() => true, () => false)) return target;
    throw e;
  }
  return target;
}

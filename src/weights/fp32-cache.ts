/**
 * Converted copies of components: fp32 copies of fp16/bf16 components (for `--weights fp32`, and always for the
 * VAE, whose session rewrites its convolutions and needs constant float32 weights), and fp16 copies of fp32
 * components (for `--weights fp16`). A component is converted ONCE, tensor by tensor, into
 * `cacheDir/<fingerprint>/<component>.safetensors` (fp32) or `<component>.f16.safetensors` (fp16).
 * The fingerprint covers the source path, sizes and mtimes: a changed source gets a new cache.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readSafetensorsHeader, readTensorF32, numel, writeSafetensors, type WriteEntry } from './safetensors.ts';
import type { ComponentName, DType, TensorRef, WeightPrecision } from './types.ts';

const FINGERPRINT_KEY = 'atelier_source_fingerprint';
const SOURCE_FILE = 'source.json';

/** Hash of the source path and the size + mtime of every weight file. */
export async function sourceFingerprint(source: string, files: readonly string[]): Promise<string> {
  const stamps: [string, number, number][] = [];
  for (const f of [...files].sort()) {
    const s = await stat(f);
    stamps.push([path.relative(source, f) || path.basename(f), s.size, s.mtimeMs]);
  }
  return createHash('sha256').update(JSON.stringify({ source: path.resolve(source), stamps })).digest('hex').slice(0, 16);
}

export function needsFp32(weights: ReadonlyMap<string, TensorRef>): boolean {
  for (const t of weights.values()) if (t.dtype !== 'F32') return true;
  return false;
}

/** Float dtypes a converted copy can have. */
export type CopyDtype = 'F32' | 'F16';

/**
 * The dtype a component has to be converted to so that its weights are held as `precision` asks, or null when the
 * stored tensors can be used as they are (with 'fp16', F16 and BF16 are both used as stored). The VAE is always
 * float32.
 */
export function conversionFor(component: ComponentName, weights: ReadonlyMap<string, TensorRef>, precision: WeightPrecision): CopyDtype | null {
  const dtypes = new Set([...weights.values()].map((t) => t.dtype));
  const only = (...ok: DType[]) => [...dtypes].every((d) => ok.includes(d));
  if (component === 'vae' || precision !== 'fp16') return only('F32') ? null : 'F32';
  return only('F16', 'BF16') ? null : 'F16';
}

/** The stored shape of a ref (a transposed 2-D matrix is stored [shape[1], shape[0]]). */
function storedShape(t: TensorRef): number[] {
  return t.transposed ? [t.shape[1], t.shape[0]] : t.shape;
}

/** Refs into an existing cache file when it is complete and belongs to this fingerprint; else null. */
async function reuse(file: string, fingerprint: string, weights: ReadonlyMap<string, TensorRef>, dtype: CopyDtype): Promise<Map<string, TensorRef> | null> {
  let header;
  try {
    header = await readSafetensorsHeader(file);
  } catch {
    return null;
  }
  if (header.metadata[FINGERPRINT_KEY] !== fingerprint || header.tensors.size !== weights.size) return null;
  const out = new Map<string, TensorRef>();
  for (const [name, t] of weights) {
    const e = header.tensors.get(name);
    if (!e || e.dtype !== dtype || numel(e.shape) !== numel(t.shape)) return null;
    out.set(name, { file: header.file, dtype, shape: [...t.shape], byteOffset: e.byteOffset, byteLength: e.byteLength, ...(t.transposed ? { transposed: true } : {}) });
  }
  return out;
}

/** Removes cache folders of older fingerprints of the same source. */
async function removeStale(cacheDir: string, source: string, keep: string): Promise<void> {
  const entries = await readdir(cacheDir).catch(() => [] as string[]);
  for (const name of entries) {
    if (name === keep) continue;
    const json = await readFile(path.join(cacheDir, name, SOURCE_FILE), 'utf8').catch(() => null);
    if (json === null) continue;
    try {
      if ((JSON.parse(json) as { source?: string }).source === source) await rm(path.join(cacheDir, name), { recursive: true, force: true });
    } catch {
      // not ours
    }
  }
}

export interface Fp32Component {
  weights: Map<string, TensorRef>;
  /** the cache folder (the component's root from now on) */
  root: string;
  file: string;
  created: boolean;
}

/**
 * fp32 (or, with `dtype: 'F16'`, fp16) TensorRefs for a component, converting into the cache when needed. Values
 * keep their stored element order (a `transposed` ref stays transposed); only the dtype changes.
 */
export async function ensureFp32Component(
  weights: ReadonlyMap<string, TensorRef>,
  opts: { cacheDir: string; fingerprint: string; component: ComponentName; source: string; dtype?: CopyDtype },
): Promise<Fp32Component> {
  const dtype = opts.dtype ?? 'F32';
  const root = path.join(path.resolve(opts.cacheDir), opts.fingerprint);
  const file = path.join(root, `${opts.component}${dtype === 'F32' ? '' : '.f16'}.safetensors`);
  const existing = await reuse(file, opts.fingerprint, weights, dtype);
  if (existing) return { weights: existing, root, file, created: false };
  await mkdir(root, { recursive: true });
  await writeFile(path.join(root, SOURCE_FILE), JSON.stringify({ source: path.resolve(opts.source) }));
  await removeStale(path.resolve(opts.cacheDir), path.resolve(opts.source), opts.fingerprint);
  const entries: WriteEntry[] = [...weights].map(([name, t]) => ({
    name,
    dtype,
    shape: storedShape(t),
    data: () => readTensorF32(t),
  }));
  await writeSafetensors(file, entries, { [FINGERPRINT_KEY]: opts.fingerprint, source: path.resolve(opts.source) });
  const fresh = await reuse(file, opts.fingerprint, weights, dtype);
  if (!fresh) throw new Error(`${dtype} cache ${file} unreadable right after writing`);
  return { weights: fresh, root, file, created: true };
}

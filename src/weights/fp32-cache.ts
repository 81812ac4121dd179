/**
 * Converted copies of components: fp32 copies of fp16/bf16 components (for `--weights fp32`, and always for the
 * VAE, whose session rewrites its convolutions and needs constant float32 weights), and fp16 copies of fp32
 * components (for `--weights fp16`). A component is converted ONCE, tensor by tensor, into
 * `cacheDir/<fingerprint>/<component>.safetensors` (fp32) or `<component>.f16.safetensors` (fp16).
 * The fingerprint covers the source path, sizes and mtimes: a changed source gets a new cache.
 */
import { DerivedCache, storedShape } from './derived-cache.ts';
import { readTensorF32, type WriteEntry } from './safetensors.ts';
import type { ComponentName, DType, TensorRef, WeightPrecision } from './types.ts';

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
  const cache = new DerivedCache(opts);
  const name = `${opts.component}${dtype === 'F32' ? '' : '.f16'}.safetensors`;
  const entries: WriteEntry[] = [...weights].map(([tensor, t]) => ({ name: tensor, dtype, shape: storedShape(t), data: () => readTensorF32(t) }));
  const { header, created } = await cache.ensureTensors(name, entries);
  const out = new Map<string, TensorRef>();
  for (const [tensor, t] of weights) {
    const e = header.tensors.get(tensor)!; // ensureTensors checked every entry
    out.set(tensor, { file: header.file, dtype, shape: [...t.shape], byteOffset: e.byteOffset, byteLength: e.byteLength, ...(t.transposed ? { transposed: true } : {}) });
  }
  return { weights: out, root: cache.root, file: header.file, created };
}

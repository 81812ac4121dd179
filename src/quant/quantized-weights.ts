/**
 * A component's Linear weights quantised once per checkpoint and scheme into the derived-weights cache
 * (src/weights/derived-cache.ts) as `<component>-<scheme>.safetensors`: quantisable Linear weights in the scheme's
 * layout (+ `_scale`), every other tensor as fp32 (so that one folder holds all of the session's external data).
 */
import { AtelierError } from '../contract/errors.ts';
import { LINEAR_QUANT_SCHEMES, type QuantScheme } from '../contract/tables.ts';
import { DerivedCache, storedShape } from '../weights/derived-cache.ts';
import { readTensorCanonical, readTensorF32, tensorRefOf, type SafetensorsHeader, type WriteEntry } from '../weights/safetensors.ts';
import type { ComponentName, SdxlModel, TensorRef } from '../weights/types.ts';
import { isQuantizable, quantDtype, quantizeFor, quantShape, SCALE_SUFFIX } from './linear-schemes.ts';

/** Cache format version: bump when the stored layout of any scheme changes. */
const FORMAT_VERSION = '1';
const META_SCHEME = 'atelier_quant_scheme';
const META_VERSION = 'atelier_quant_version';

/**
 * The weights of a component read from its quantised cache: fp32 refs of every unquantised tensor, and for each
 * quantised Linear weight a shape-only ref (canonical [out, in], dtype I8/U8: never an fp32 initializer). Build the
 * network with these weights AND `quantizedLinearLayers(weights)` (src/quant/quantized-linear.ts) as its Linear
 * builder.
 */
export class QuantizedWeights extends Map<string, TensorRef> {
  constructor(
    entries: Iterable<[string, TensorRef]>,
    readonly scheme: QuantScheme,
    /** `${module}.weight` → stored quantised tensor, `${module}.weight_scale` → its scales */
    readonly quant: ReadonlyMap<string, TensorRef>,
    readonly file: string,
    /** true when this call wrote the cache file */
    readonly created: boolean,
  ) {
    super(entries);
  }
}

/** What the cache file holds for `weights` in `scheme` (data produced when written). */
function cacheEntries(weights: ReadonlyMap<string, TensorRef>, scheme: QuantScheme): WriteEntry[] {
  const entries: WriteEntry[] = [];
  const scales = new Map<string, Float32Array>(); // computed with the weight, written right after it
  for (const [name, t] of weights) {
    if (!isQuantizable(name, t)) {
      entries.push({ name, dtype: 'F32', shape: storedShape(t), data: () => readTensorF32(t) });
      continue;
    }
    const [out, inF] = t.shape;
    const shapes = quantShape(scheme, out, inF);
    const quantize = async () => {
      const r = quantizeFor(scheme, await readTensorCanonical(t), out, inF);
      scales.set(name, r.s);
      return r.q;
    };
    const takeScale = () => {
      const s = scales.get(name);
      if (!s) throw new AtelierError('INTERNAL', `quantised cache: scales of "${name}" requested before its weight`);
      scales.delete(name);
      return s;
    };
    entries.push({ name, dtype: quantDtype(scheme), shape: shapes.q, data: quantize });
    entries.push({ name: name + SCALE_SUFFIX, dtype: 'F32', shape: shapes.s, data: takeScale });
  }
  return entries;
}

/** `QuantizedWeights` over a cache file whose tensors the derived cache has checked. */
function quantizedWeights(header: SafetensorsHeader, source: ReadonlyMap<string, TensorRef>, scheme: QuantScheme, created: boolean): QuantizedWeights {
  const plain: [string, TensorRef][] = [];
  const quant = new Map<string, TensorRef>();
  for (const [name, t] of source) {
    const r = tensorRefOf(header, name);
    if (isQuantizable(name, t)) {
      quant.set(name, r);
      quant.set(name + SCALE_SUFFIX, tensorRefOf(header, name + SCALE_SUFFIX));
      plain.push([name, { ...r, shape: [...t.shape] }]); // shape-only (canonical [out, in], I8/U8)
    } else {
      plain.push([name, { ...r, shape: [...t.shape], ...(t.transposed ? { transposed: true } : {}) }]);
    }
  }
  return new QuantizedWeights(plain, scheme, quant, header.file, created);
}

export interface QuantizeOptions {
  scheme: QuantScheme;
  /** cache root; the file is `<cacheDir>/<fingerprint>/<component>-<scheme>.safetensors` */
  cacheDir: string;
  /** `SdxlModel.fingerprint` of the source checkpoint */
  fingerprint: string;
  /** the checkpoint path (recorded so that stale caches of the same source can be removed) */
  source: string;
  component: string;
}

/** The quantised weights of a component, writing the cache once per checkpoint and scheme. */
export async function ensureQuantized(weights: ReadonlyMap<string, TensorRef>, opts: QuantizeOptions): Promise<QuantizedWeights> {
  if (!LINEAR_QUANT_SCHEMES.includes(opts.scheme)) {
    throw new AtelierError('BAD_REQUEST', `unknown quantisation scheme "${opts.scheme}" (expected one of ${LINEAR_QUANT_SCHEMES.join(', ')})`);
  }
  const cache = new DerivedCache(opts);
  const stamp = { [META_SCHEME]: opts.scheme, [META_VERSION]: FORMAT_VERSION };
  const { header, created } = await cache.ensureTensors(`${opts.component}-${opts.scheme}.safetensors`, cacheEntries(weights, opts.scheme), stamp);
  return quantizedWeights(header, weights, opts.scheme, created);
}

/** `ensureQuantized` for one component of a loaded checkpoint. */
export async function quantizeComponent(
  model: Pick<SdxlModel, 'weights' | 'fingerprint' | 'source'>,
  component: ComponentName,
  opts: { scheme: QuantScheme; cacheDir: string },
): Promise<QuantizedWeights> {
  return ensureQuantized(model.weights[component], { ...opts, fingerprint: model.fingerprint, source: model.source, component });
}

/**
 * Weight quantisers for onnxruntime's reduced-precision CPU kernels (pure functions; the cache writer and the
 * graph hook build on them). Layouts follow onnxruntime's docs/ContribOperators.md:
 * - `DynamicQuantizeMatMul` (com.microsoft): B int8 [K, N], one scale per output column (symmetric, zero point 0);
 *   activations are quantised to uint8 per tensor at run time.
 * - `MatMulNBits` (com.microsoft): B uint8 [N, ceil(K/blockSize), blockSize·bits/8], scales [N, kBlocks], blockwise
 *   along K; without a zero-point input the zero point is 2^(bits−1) (symmetric here); 4-bit values packed two per
 *   byte, the even element in the low nibble.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import { MS_DOMAIN, type Value } from '../onnx/graph.ts';
import { readSafetensorsHeader, readTensorCanonical, readTensorF32, tensorRefOf, writeSafetensors, type WriteEntry } from '../weights/safetensors.ts';
import type { ComponentName, SdxlModel, TensorRef } from '../weights/types.ts';
import type { NetContext } from './blocks.ts';

export interface Int8PerColumn {
  /** [K, N] = [in, out] row-major (MatMul's B layout) */
  q: Int8Array;
  /** [N] */
  scale: Float32Array;
}

/** Symmetric per-output-channel int8 of a canonical Linear weight w [out, in] → B [in, out] for MatMul. */
export function quantizeInt8PerColumn(w: Float32Array, out: number, inF: number): Int8PerColumn {
  if (w.length !== out * inF) throw new AtelierError('INTERNAL', `quantizeInt8PerColumn: ${w.length} values for [${out}, ${inF}]`);
  const q = new Int8Array(out * inF);
  const scale = new Float32Array(out);
  for (let n = 0; n < out; n++) {
    const row = n * inF;
    let m = 0;
    for (let k = 0; k < inF; k++) m = Math.max(m, Math.abs(w[row + k]));
    const s = m > 0 ? m / 127 : 1;
    scale[n] = s;
    const inv = 1 / s;
    for (let k = 0; k < inF; k++) {
      const v = Math.round(w[row + k] * inv);
      q[k * out + n] = v > 127 ? 127 : v < -127 ? -127 : v;
    }
  }
  return { q, scale };
}

/** Inverse of `quantizeInt8PerColumn`, back to [out, in] (tests). */
export function dequantizeInt8PerColumn(p: Int8PerColumn, out: number, inF: number): Float32Array {
  const w = new Float32Array(out * inF);
  for (let n = 0; n < out; n++) for (let k = 0; k < inF; k++) w[n * inF + k] = p.q[k * out + n] * p.scale[n];
  return w;
}

export interface BlockQuantized {
  /** [N, kBlocks, blockSize·bits/8] */
  packed: Uint8Array;
  /** [N, kBlocks] */
  scales: Float32Array;
  kBlocks: number;
  blobSize: number;
}

/**
 * Symmetric blockwise quantisation of a canonical Linear weight w [out = N, in = K] for MatMulNBits (bits 4 or 8):
 * per (row, block of `blockSize` along K) scale = absmax / (2^(bits−1) − 1); stored value q + 2^(bits−1) (the op's
 * default zero point). A last partial block is padded with zeros.
 */
export function quantizeBlockwise(w: Float32Array, out: number, inF: number, bits: 4 | 8, blockSize: number): BlockQuantized {
  if (w.length !== out * inF) throw new AtelierError('INTERNAL', `quantizeBlockwise: ${w.length} values for [${out}, ${inF}]`);
  if (!(blockSize >= 16 && (blockSize & (blockSize - 1)) === 0)) throw new AtelierError('INTERNAL', `quantizeBlockwise: block size ${blockSize} is not a power of two ≥ 16`);
  const kBlocks = Math.ceil(inF / blockSize);
  const blobSize = (blockSize * bits) / 8;
  const qmax = (1 << (bits - 1)) - 1;
  const zp = 1 << (bits - 1);
  const packed = new Uint8Array(out * kBlocks * blobSize);
  const scales = new Float32Array(out * kBlocks);
  for (let n = 0; n < out; n++) {
    for (let b = 0; b < kBlocks; b++) {
      const k0 = b * blockSize;
      const k1 = Math.min(inF, k0 + blockSize);
      let m = 0;
      for (let k = k0; k < k1; k++) m = Math.max(m, Math.abs(w[n * inF + k]));
      const s = m > 0 ? m / qmax : 1;
      scales[n * kBlocks + b] = s;
      const inv = 1 / s;
      const blob = (n * kBlocks + b) * blobSize;
      for (let j = 0; j < blockSize; j++) {
        const k = k0 + j;
        let v = k < k1 ? Math.round(w[n * inF + k] * inv) : 0;
        v = (v > qmax ? qmax : v < -qmax ? -qmax : v) + zp;
        if (bits === 8) packed[blob + j] = v;
        else packed[blob + (j >> 1)] |= (j & 1) === 0 ? v : v << 4;
      }
    }
  }
  return { packed, scales, kBlocks, blobSize };
}

/** Inverse of `quantizeBlockwise`, back to [out, in] (tests). */
export function dequantizeBlockwise(p: BlockQuantized, out: number, inF: number, bits: 4 | 8, blockSize: number): Float32Array {
  const w = new Float32Array(out * inF);
  const zp = 1 << (bits - 1);
  for (let n = 0; n < out; n++) {
    for (let k = 0; k < inF; k++) {
      const b = Math.floor(k / blockSize);
      const j = k - b * blockSize;
      const blob = (n * p.kBlocks + b) * p.blobSize;
      const raw = bits === 8 ? p.packed[blob + j] : (p.packed[blob + (j >> 1)] >> ((j & 1) * 4)) & 0xf;
      w[n * inF + k] = (raw - zp) * p.scales[n * p.kBlocks + b];
    }
  }
  return w;
}

/** Symmetric per-row int8 of w [rows, cols] kept in row layout (conv weights [Cout, Cin·kh·kw]). */
export function quantizeInt8PerRow(w: Float32Array, rows: number, cols: number): { q: Int8Array; scale: Float32Array } {
  if (w.length !== rows * cols) throw new AtelierError('INTERNAL', `quantizeInt8PerRow: ${w.length} values for [${rows}, ${cols}]`);
  const q = new Int8Array(rows * cols);
  const scale = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(w[r * cols + c]));
    const s = m > 0 ? m / 127 : 1;
    scale[r] = s;
    const inv = 1 / s;
    for (let c = 0; c < cols; c++) {
      const v = Math.round(w[r * cols + c] * inv);
      q[r * cols + c] = v > 127 ? 127 : v < -127 ? -127 : v;
    }
  }
  return { q, scale };
}

/**
 * Quantisation schemes of Linear layers (convolutions stay fp32: onnxruntime's CPU ConvInteger is uint8×uint8 with
 * per-tensor zero points and measured ≤1.5× the fp32 NCHWc Conv; static QLinearConv is ~3× but needs calibrated
 * activation ranges). Measured on the 2-core AVX-512 VNNI CPU, full SDXL UNet, 64×64 latents, batch 2, random
 * weights (bench/quant-unet.ts): fp32 11.3 s, `int8` 5.2 s, `int8-block` 8.5 s per call.
 * - `int8`: DynamicQuantizeMatMul — int8 weights per output channel, activations uint8 per tensor at run time.
 * - `int8-block`: MatMulNBits bits 8, block 128 along K, accuracy_level 4 — activations quantised to int8 per row
 *   and block of 128 (robust to outlier channels, slower).
 */
export { LINEAR_QUANT_SCHEMES as QUANT_SCHEMES, type QuantScheme, UNET_QUANTIZATIONS, type UNetQuantization } from '../contract/tables.ts';
import { LINEAR_QUANT_SCHEMES as QUANT_SCHEMES, type QuantScheme, type UNetQuantization } from '../contract/tables.ts';

/**
 * The UNet quantisation a user picks (`--quantize`): a Linear scheme, or `int8-full` = `int8` Linear layers plus the
 * resnet convolutions as calibrated int8 QLinearConv (src/networks/int8-conv.ts; faster, a larger fidelity cost).
 */

/** The Linear scheme of a quantisation choice, and whether its resnet convolutions are int8. */
export function quantizationParts(q: UNetQuantization): { linear: QuantScheme; int8Convs: boolean } {
  return q === 'int8-full' ? { linear: 'int8', int8Convs: true } : { linear: q, int8Convs: false };
}
const BLOCK = 128;

/** Cache format version: bump when the stored layout of any scheme changes. */
const FORMAT_VERSION = '1';
const META_FINGERPRINT = 'atelier_source_fingerprint';
const META_SCHEME = 'atelier_quant_scheme';
const META_VERSION = 'atelier_quant_version';
const SCALE_SUFFIX = '_scale';

export interface QuantContext {
  scheme: QuantScheme;
  /** `${module}.weight` → stored quantised tensor, `${module}.weight_scale` → its scales */
  weights: ReadonlyMap<string, TensorRef>;
}

/**
 * The weights of a component read from its quantised cache: fp32 refs of every unquantised tensor, and for each
 * quantised Linear weight a shape-only ref (canonical [out, in], dtype I8/U8: never an fp32 initializer). Passing
 * this map where a component's weights go (`newContext`) switches those Linear layers to the scheme's kernel.
 */
export class QuantizedWeights extends Map<string, TensorRef> {
  constructor(
    entries: Iterable<[string, TensorRef]>,
    readonly scheme: QuantScheme,
    readonly quant: ReadonlyMap<string, TensorRef>,
    readonly file: string,
  ) {
    super(entries);
  }

  /** true when this call wrote the cache file */
  created = false;

  context(): QuantContext {
    return { scheme: this.scheme, weights: this.quant };
  }
}

/** Which tensors a scheme quantises: 2-D Linear weights inside transformer blocks (`…attentions.N…`, proj_in/out too). */
export function isQuantizable(name: string, ref: TensorRef): boolean {
  return name.endsWith('.weight') && ref.shape.length === 2 && /(^|\.)attentions\.\d+\./.test(name);
}

/** x [..., in] → [..., out] through the quantised weight of `module` (bias and LoRA are added by `linear`). */
export function quantizedMatMul(ctx: NetContext, q: QuantContext, x: Value, module: string): Value {
  const name = `${module}.weight`;
  const wRef = q.weights.get(name);
  const sRef = q.weights.get(`${name}${SCALE_SUFFIX}`);
  const shape = ctx.weights.get(name)?.shape;
  if (!wRef || !sRef || !shape) throw new AtelierError('INTERNAL', `${ctx.component}: quantised weight "${name}" is incomplete in the cache`);
  const [N, K] = shape;
  const W = ctx.g.quantWeight(`${ctx.component}:${name}`, wRef);
  const S = ctx.g.weight(`${ctx.component}:${name}${SCALE_SUFFIX}`, sRef);
  if (q.scheme === 'int8') return ctx.g.op('DynamicQuantizeMatMul', [x, W, S], {}, { domain: MS_DOMAIN });
  return ctx.g.op('MatMulNBits', [x, W, S], { K, N, bits: 8, block_size: BLOCK, accuracy_level: 4 }, { domain: MS_DOMAIN });
}

/** The quantised bytes and scales of one canonical weight [out, in] in `scheme`'s stored layout. */
function quantizeFor(scheme: QuantScheme, w: Float32Array, out: number, inF: number): { q: Uint8Array; s: Float32Array } {
  if (scheme === 'int8') {
    const p = quantizeInt8PerColumn(w, out, inF);
    return { q: new Uint8Array(p.q.buffer, p.q.byteOffset, p.q.byteLength), s: p.scale };
  }
  const p = quantizeBlockwise(w, out, inF, 8, BLOCK);
  return { q: p.packed, s: p.scales };
}

function quantShape(scheme: QuantScheme, out: number, inF: number): { q: number[]; s: number[] } {
  if (scheme === 'int8') return { q: [inF, out], s: [out] };
  const kBlocks = Math.ceil(inF / BLOCK);
  return { q: [out, kBlocks, BLOCK], s: [out, kBlocks] };
}

function storedShape(t: TensorRef): number[] {
  return t.transposed ? [t.shape[1], t.shape[0]] : t.shape;
}

/** `QuantizedWeights` of an existing cache file when it matches the source tensors, fingerprint and scheme; else null. */
async function openCache(file: string, source: ReadonlyMap<string, TensorRef>, fingerprint: string, scheme: QuantScheme): Promise<QuantizedWeights | null> {
  let header;
  try {
    header = await readSafetensorsHeader(file);
  } catch {
    return null;
  }
  const m = header.metadata;
  if (m[META_FINGERPRINT] !== fingerprint || m[META_SCHEME] !== scheme || m[META_VERSION] !== FORMAT_VERSION) return null;
  const plain: [string, TensorRef][] = [];
  const quant = new Map<string, TensorRef>();
  for (const [name, t] of source) {
    if (!header.tensors.has(name)) return null;
    const r = tensorRefOf(header, name);
    if (isQuantizable(name, t)) {
      const s = header.tensors.has(name + SCALE_SUFFIX) ? tensorRefOf(header, name + SCALE_SUFFIX) : null;
      const want = quantShape(scheme, t.shape[0], t.shape[1]);
      if (!s || r.shape.join() !== want.q.join() || s.shape.join() !== want.s.join()) return null;
      quant.set(name, r);
      quant.set(name + SCALE_SUFFIX, s);
      plain.push([name, { ...r, shape: [...t.shape] }]); // shape-only (canonical [out, in], I8/U8)
    } else {
      if (r.dtype !== 'F32' || r.shape.join() !== storedShape(t).join()) return null;
      plain.push([name, { ...r, shape: [...t.shape], ...(t.transposed ? { transposed: true } : {}) }]);
    }
  }
  return new QuantizedWeights(plain, scheme, quant, header.file);
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

/**
 * The quantised weights of a component, writing the cache once per checkpoint and scheme: quantisable Linear
 * weights in the scheme's layout (+ `_scale`), every other tensor as fp32 (so that one folder holds all of the
 * session's external data). Written tensor by tensor through a temporary file renamed at the end.
 */
export async function ensureQuantized(weights: ReadonlyMap<string, TensorRef>, opts: QuantizeOptions): Promise<QuantizedWeights> {
  if (!QUANT_SCHEMES.includes(opts.scheme)) {
    throw new AtelierError('BAD_REQUEST', `unknown quantisation scheme "${opts.scheme}" (expected one of ${QUANT_SCHEMES.join(', ')})`);
  }
  const root = path.join(path.resolve(opts.cacheDir), opts.fingerprint);
  const file = path.join(root, `${opts.component}-${opts.scheme}.safetensors`);
  const existing = await openCache(file, weights, opts.fingerprint, opts.scheme);
  if (existing) return existing;
  await mkdir(root, { recursive: true });
  await writeFile(path.join(root, 'source.json'), JSON.stringify({ source: path.resolve(opts.source) }));
  const entries: WriteEntry[] = [];
  const scales = new Map<string, Float32Array>(); // computed with the weight, written right after it
  for (const [name, t] of weights) {
    if (!isQuantizable(name, t)) {
      entries.push({ name, dtype: 'F32', shape: storedShape(t), data: () => readTensorF32(t) });
      continue;
    }
    const [out, inF] = t.shape;
    const shapes = quantShape(opts.scheme, out, inF);
    const quantize = async () => {
      const r = quantizeFor(opts.scheme, await readTensorCanonical(t), out, inF);
      scales.set(name, r.s);
      return r.q;
    };
    const takeScale = () => {
      const s = scales.get(name);
      if (!s) throw new AtelierError('INTERNAL', `quantised cache: scales of "${name}" requested before its weight`);
      scales.delete(name);
      return s;
    };
    entries.push({ name, dtype: opts.scheme === 'int8' ? 'I8' : 'U8', shape: shapes.q, data: quantize });
    entries.push({ name: name + SCALE_SUFFIX, dtype: 'F32', shape: shapes.s, data: takeScale });
  }
  await writeSafetensors(file, entries, { [META_FINGERPRINT]: opts.fingerprint, [META_SCHEME]: opts.scheme, [META_VERSION]: FORMAT_VERSION, source: path.resolve(opts.source) });
  const fresh = await openCache(file, weights, opts.fingerprint, opts.scheme);
  if (!fresh) throw new AtelierError('INTERNAL', `quantised cache ${file} unreadable right after writing`);
  fresh.created = true;
  return fresh;
}

/** `ensureQuantized` for one component of a loaded checkpoint (what `UNet.create(model, { quant })` calls). */
export async function quantizeComponent(
  model: Pick<SdxlModel, 'weights' | 'fingerprint' | 'source'>,
  component: ComponentName,
  opts: { scheme: QuantScheme; cacheDir: string },
): Promise<QuantizedWeights> {
  return ensureQuantized(model.weights[component], { ...opts, fingerprint: model.fingerprint, source: model.source, component });
}

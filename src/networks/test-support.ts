/**
 * Test-only helpers shared by the network tests (CLIP text encoders, UNet, VAE): a deliberately tiny safetensors
 * reader (8-byte little-endian header length, JSON header, raw data) that maps the oracle's diffusers folder into
 * canonical weight maps, and reads the recorded oracle tensors (components.safetensors and the traces).
 */
import fs from 'node:fs';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import type { DType, SdxlModel, TensorRef } from '../weights/types.ts';

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

function readHeader(file: string): { base: number; entries: [string, HeaderEntry][] } {
  const fd = fs.openSync(file, 'r');
  try {
    const len = Buffer.alloc(8);
    fs.readSync(fd, len, 0, 8, 0);
    const headerLen = Number(len.readBigUInt64LE(0));
    const json = Buffer.alloc(headerLen);
    fs.readSync(fd, json, 0, headerLen, 8);
    const header = JSON.parse(json.toString('utf8')) as Record<string, HeaderEntry>;
    return { base: 8 + headerLen, entries: Object.entries(header).filter(([k]) => k !== '__metadata__') };
  } finally {
    fs.closeSync(fd);
  }
}

/** Every tensor of one safetensors file as name → TensorRef (absolute byte offsets). */
export function readWeightsMap(file: string): Map<string, TensorRef> {
  const abs = path.resolve(file);
  const { base, entries } = readHeader(abs);
  const out = new Map<string, TensorRef>();
  for (const [name, e] of entries) {
    const [begin, end] = e.data_offsets;
    out.set(name, { file: abs, dtype: e.dtype as DType, shape: e.shape, byteOffset: base + begin, byteLength: end - begin });
  }
  return out;
}

export type OracleComponent = 'unet' | 'vae' | 'text_encoder' | 'text_encoder_2';

/** The weights of one component of the oracle's diffusers folder (`tiny-sdxl/<component>/*.safetensors`). */
export function oracleFolderWeights(component: OracleComponent): Map<string, TensorRef> {
  const dir = path.join(oracleDir(), 'tiny-sdxl', component);
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
  const out = new Map<string, TensorRef>();
  for (const f of files) for (const [k, v] of readWeightsMap(path.join(dir, f))) out.set(k, v);
  return out;
}

/** The parsed `config.json` of one component of the oracle's diffusers folder. */
export function oracleFolderConfig(component: OracleComponent): Record<string, any> {
  return JSON.parse(fs.readFileSync(path.join(oracleDir(), 'tiny-sdxl', component, 'config.json'), 'utf8')) as Record<string, any>;
}

export interface OracleTensor {
  dtype: string;
  shape: number[];
  /** float32 as is; int64 as BigInt64Array; uint8 as is */
  data: Float32Array | BigInt64Array | Uint8Array;
}

const tensorCache = new Map<string, Map<string, OracleTensor>>();

/** All tensors of an oracle file, e.g. `components` or `img2img_trace` (cached per process). */
export function oracleTensors(name = 'components'): Map<string, OracleTensor> {
  const hit = tensorCache.get(name);
  if (hit) return hit;
  const file = path.join(oracleDir(), `${name}.safetensors`);
  const { base, entries } = readHeader(file);
  const buf = fs.readFileSync(file);
  const out = new Map<string, OracleTensor>();
  for (const [k, e] of entries) {
    const [begin, end] = e.data_offsets;
    const bytes = new Uint8Array(buf.subarray(base + begin, base + end)); // aligned copy
    let data: OracleTensor['data'];
    if (e.dtype === 'F32') data = new Float32Array(bytes.buffer, 0, bytes.length / 4);
    else if (e.dtype === 'I64') data = new BigInt64Array(bytes.buffer, 0, bytes.length / 8);
    else if (e.dtype === 'U8') data = bytes;
    else throw new Error(`oracle ${name}: unsupported dtype ${e.dtype} for ${k}`);
    out.set(k, { dtype: e.dtype, shape: e.shape, data });
  }
  tensorCache.set(name, out);
  return out;
}

/** One float32 oracle tensor; throws when absent or not float32. */
export function oracleF32(name: string, file = 'components'): { data: Float32Array; shape: number[] } {
  const t = oracleTensors(file).get(name);
  if (!t) throw new Error(`oracle ${file}: no tensor ${name}`);
  if (!(t.data instanceof Float32Array)) throw new Error(`oracle ${file}: ${name} is ${t.dtype}, not F32`);
  return { data: t.data, shape: t.shape };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** One int64 oracle tensor (token ids); throws when absent or not int64. */
export function oracleI64(name: string, file = 'components'): { data: BigInt64Array; shape: number[] } {
  const t = oracleTensors(file).get(name);
  if (!t) throw new Error(`oracle ${file}: no tensor ${name}`);
  if (!(t.data instanceof BigInt64Array)) throw new Error(`oracle ${file}: ${name} is ${t.dtype}, not I64`);
  return { data: t.data, shape: t.shape };
}

/**
 * An SdxlModel over the oracle's diffusers folder built without src/weights/load-model.ts: the weights of all four
 * components and only the configs the caller supplies (a test touches only its own component).
 */
export function oracleFolderModel(config: Partial<SdxlModel['config']>): SdxlModel {
  return {
    name: 'tiny-sdxl',
    source: path.join(oracleDir(), 'tiny-sdxl'),
    layout: 'diffusers',
    fingerprint: 'oracle-folder',
    weights: {
      unet: oracleFolderWeights('unet'),
      vae: oracleFolderWeights('vae'),
      textEncoder1: oracleFolderWeights('text_encoder'),
      textEncoder2: oracleFolderWeights('text_encoder_2'),
    },
    config: config as SdxlModel['config'],
    tokenizers: null,
  };
}

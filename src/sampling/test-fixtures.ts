/**
 * Test-only helpers: read the oracle traces (safetensors + json) recorded with diffusers.
 * A deliberately tiny safetensors reader (8-byte LE header length, JSON header, raw data) so the sampling
 * tests do not depend on the project's own weights reader.
 */
import fs from 'node:fs';
import path from 'node:path';
import { oracleDir } from '../paths.ts';

export interface FixtureTensor {
  dtype: string;
  shape: number[];
  /** float32 as is; int64 / uint8 converted to numbers */
  data: Float32Array | Float64Array | Uint8Array;
}

export type Trace = Map<string, FixtureTensor>;

export function readSafetensors(file: string): Trace {
  const buf = fs.readFileSync(file);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + headerLen;
  const out: Trace = new Map();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [begin, end] = info.data_offsets;
    const bytes = buf.subarray(base + begin, base + end);
    const copy = new Uint8Array(bytes); // aligned copy
    let data: FixtureTensor['data'];
    if (info.dtype === 'F32') data = new Float32Array(copy.buffer, 0, copy.length / 4);
    else if (info.dtype === 'I64') data = Float64Array.from(new BigInt64Array(copy.buffer, 0, copy.length / 8), Number);
    else if (info.dtype === 'U8') data = copy;
    else throw new Error(`test fixture: unsupported dtype ${info.dtype} for ${name}`);
    out.set(name, { dtype: info.dtype, shape: info.shape, data });
  }
  return out;
}

export interface TraceBundle {
  json: Record<string, any>;
  tensors: Trace;
  /** a tensor by name, as Float32Array (float32) or Float64Array (int64); throws when absent */
  get(name: string): Float32Array | Float64Array;
  has(name: string): boolean;
}

const cache = new Map<string, TraceBundle>();

export function loadTrace(name: string): TraceBundle {
  const hit = cache.get(name);
  if (hit) return hit;
  const dir = oracleDir();
  const json = JSON.parse(fs.readFileSync(path.join(dir, `${name}.json`), 'utf8')) as Record<string, any>;
  const tensors = readSafetensors(path.join(dir, `${name}.safetensors`));
  const bundle: TraceBundle = {
    json,
    tensors,
    has: (n) => tensors.has(n),
    get(n) {
      const t = tensors.get(n);
      if (!t) throw new Error(`trace ${name}: no tensor ${n}`);
      if (t.data instanceof Uint8Array) throw new Error(`trace ${name}: ${n} is uint8`);
      return t.data;
    },
  };
  cache.set(name, bundle);
  return bundle;
}

export function readOracleJson(file: string): any {
  return JSON.parse(fs.readFileSync(path.join(oracleDir(), file), 'utf8'));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function f32Bits(x: number): number {
  const f = new Float32Array([x]);
  return new Uint32Array(f.buffer)[0];
}

/** distance in float32 ulps between two float32 values of the same sign */
export function ulpDiff(a: number, b: number): number {
  return Math.abs(f32Bits(a) - f32Bits(b));
}

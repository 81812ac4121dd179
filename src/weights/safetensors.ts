/**
 * safetensors: 8-byte little-endian header length, a JSON header, then the raw tensor bytes.
 * Format: https://github.com/huggingface/safetensors (README "Format").
 * Reading never loads the file whole: the header, then one tensor's byte range at a time.
 */
import { open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './fp16.ts';
import type { DType, TensorRef } from './types.ts';

/** bytes per element of each dtype */
export const DTYPE_SIZE: Readonly<Record<DType, number>> = Object.freeze({
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, U16: 2, U32: 4, U64: 8, BOOL: 1,
});

/** The largest header we accept (the reference implementation uses the same 100 MB bound). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  dtype: DType;
  shape: number[];
  /** absolute offset in the file = 8 + headerLength + data_offsets[0] */
  byteOffset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  file: string;
  fileSize: number;
  headerLength: number;
  /** absolute offset of the data region (8 + headerLength) */
  dataStart: number;
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

function invalid(file: string, problem: string, cause?: unknown): AtelierError {
  return new AtelierError('SAFETENSORS_INVALID', `${file}: ${problem}`, { cause });
}

function isDType(x: unknown): x is DType {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, x);
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Reads and validates the header of a .safetensors file (8 + header bytes only). */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const abs = path.resolve(file);
  let fh;
  try {
    fh = await open(abs, 'r');
  } catch (e) {
    throw invalid(abs, `cannot open (${(e as Error).message})`, e);
  }
  try {
    const fileSize = (await fh.stat()).size;
    if (fileSize < 8) throw invalid(abs, `truncated: ${fileSize} bytes, shorter than the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    await fh.read(lenBuf, 0, 8, 0);
    const headerLength64 = lenBuf.readBigUInt64LE(0);
    if (headerLength64 > BigInt(MAX_HEADER_BYTES)) {
      throw invalid(abs, `oversized header: length ${headerLength64} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    }
    const headerLength = Number(headerLength64);
    if (headerLength > fileSize - 8) {
      throw invalid(abs, `truncated: header length ${headerLength} but only ${fileSize - 8} bytes follow`);
    }
    const headerBuf = Buffer.alloc(headerLength);
    const { bytesRead } = await fh.read(headerBuf, 0, headerLength, 8);
    if (bytesRead !== headerLength) throw invalid(abs, `truncated header: read ${bytesRead} of ${headerLength} bytes`);
    return parseHeader(abs, headerBuf, fileSize);
  } finally {
    await fh.close();
  }
}

function parseHeader(file: string, headerBuf: Buffer, fileSize: number): SafetensorsHeader {
  let json: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(headerBuf);
    json = JSON.parse(text);
  } catch (e) {
    throw invalid(file, `header is not UTF-8 JSON (${(e as Error).message})`, e);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw invalid(file, 'header is not a JSON object');
  const dataStart = 8 + headerBuf.length;
  const dataLength = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsEntry>();
  const ranges: { name: string; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalid(file, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw invalid(file, `__metadata__ value of "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (raw === null || typeof raw !== 'object') throw invalid(file, `entry of tensor "${name}" is not an object`);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (!isDType(dtype)) throw invalid(file, `unknown dtype ${JSON.stringify(dtype)} for tensor "${name}"`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw invalid(file, `bad shape ${JSON.stringify(shape)} for tensor "${name}" (need non-negative integers)`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw invalid(file, `bad data_offsets ${JSON.stringify(offsets)} for tensor "${name}"`);
    }
    const [begin, end] = offsets as [number, number];
    const expected = numel(shape) * DTYPE_SIZE[dtype];
    if (!Number.isSafeInteger(expected) || end < begin || end - begin !== expected) {
      throw invalid(file, `data_offsets [${begin}, ${end}] of tensor "${name}" hold ${end - begin} bytes, shape ${JSON.stringify(shape)} ${dtype} needs ${expected}`);
    }
    if (end > dataLength) {
      throw invalid(file, `offsets out of range: tensor "${name}" ends at ${end} but the data region has ${dataLength} bytes (file truncated?)`);
    }
    tensors.set(name, { dtype, shape: [...shape], byteOffset: dataStart + begin, byteLength: end - begin });
    if (end > begin) ranges.push({ name, begin, end });
  }
  ranges.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i].begin < ranges[i - 1].end) {
      throw invalid(file, `overlap: tensor "${ranges[i].name}" [${ranges[i].begin}, ${ranges[i].end}) overlaps "${ranges[i - 1].name}" [${ranges[i - 1].begin}, ${ranges[i - 1].end})`);
    }
  }
  return { file, fileSize, headerLength: headerBuf.length, dataStart, tensors, metadata };
}

/** A TensorRef for one tensor of a parsed header, stored orientation and shape. */
export function tensorRefOf(header: SafetensorsHeader, name: string): TensorRef {
  const e = header.tensors.get(name);
  if (!e) throw invalid(header.file, `no tensor "${name}"`);
  return { file: header.file, dtype: e.dtype, shape: [...e.shape], byteOffset: e.byteOffset, byteLength: e.byteLength };
}

/** The raw bytes of one tensor (a fresh, 8-byte aligned buffer). */
export async function readTensorRaw(ref: TensorRef): Promise<Buffer> {
  const buf = Buffer.alloc(ref.byteLength);
  const fh = await open(ref.file, 'r');
  try {
    let done = 0;
    while (done < ref.byteLength) {
      const { bytesRead } = await fh.read(buf, done, ref.byteLength - done, ref.byteOffset + done);
      if (bytesRead === 0) throw invalid(ref.file, `truncated: tensor bytes at ${ref.byteOffset}+${ref.byteLength} end early`);
      done += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return buf;
}

/** Converts raw little-endian tensor bytes of any dtype to float32 values. */
export function bytesToF32(bytes: Uint8Array, dtype: DType): Float32Array {
  // copy when unaligned so typed-array views are legal
  const b = bytes.byteOffset % 8 === 0 ? bytes : new Uint8Array(bytes);
  const n = b.byteLength / DTYPE_SIZE[dtype];
  switch (dtype) {
    case 'F32': return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    case 'F16': return f16ToF32(new Uint16Array(b.buffer, b.byteOffset, n));
    case 'BF16': return bf16ToF32(new Uint16Array(b.buffer, b.byteOffset, n));
    case 'F64': return Float32Array.from(new Float64Array(b.buffer, b.byteOffset, n));
    case 'I64': return Float32Array.from(new BigInt64Array(b.buffer, b.byteOffset, n), (v) => Number(v));
    case 'U64': return Float32Array.from(new BigUint64Array(b.buffer, b.byteOffset, n), (v) => Number(v));
    case 'I32': return Float32Array.from(new Int32Array(b.buffer, b.byteOffset, n));
    case 'U32': return Float32Array.from(new Uint32Array(b.buffer, b.byteOffset, n));
    case 'I16': return Float32Array.from(new Int16Array(b.buffer, b.byteOffset, n));
    case 'U16': return Float32Array.from(new Uint16Array(b.buffer, b.byteOffset, n));
    case 'I8': return Float32Array.from(new Int8Array(b.buffer, b.byteOffset, n));
    case 'U8': case 'BOOL': return Float32Array.from(b.subarray(0, n));
  }
}

/**
 * One tensor as float32, in STORED element order: when `ref.transposed` is set the values are
 * the stored [shape[1], shape[0]] matrix; use `transpose2d` to get the canonical orientation.
 */
export async function readTensorF32(ref: TensorRef): Promise<Float32Array> {
  return bytesToF32(await readTensorRaw(ref), ref.dtype);
}

/** Row-major [rows, cols] → [cols, rows]. */
export function transpose2d(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c];
  return out;
}

/** One tensor as float32 in the canonical orientation of `ref.shape` (applies `transposed`). */
export async function readTensorCanonical(ref: TensorRef): Promise<Float32Array> {
  const v = await readTensorF32(ref);
  return ref.transposed ? transpose2d(v, ref.shape[1], ref.shape[0]) : v;
}

export type TensorData = Float32Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array;

export interface WriteEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** values, or a function producing them when the writer reaches this tensor (keeps memory low) */
  data: TensorData | (() => TensorData | Promise<TensorData>);
}

/**
 * Encodes values as `dtype` bytes. Float32Array converts to F32/F16/BF16/F64; Uint16Array holds
 * F16/BF16/U16 bits; BigInt64Array holds I64; Int32Array I32; Uint8Array is raw bytes of any dtype.
 */
export function encodeTensor(data: TensorData, dtype: DType, name: string): Uint8Array {
  const asBytes = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (data instanceof Float32Array) {
    if (dtype === 'F32') return asBytes(data);
    if (dtype === 'F16') return asBytes(f32ToF16(data));
    if (dtype === 'BF16') return asBytes(f32ToBf16(data));
    if (dtype === 'F64') return asBytes(Float64Array.from(data));
  } else if (data instanceof Uint16Array) {
    if (dtype === 'F16' || dtype === 'BF16' || dtype === 'U16') return asBytes(data);
  } else if (data instanceof BigInt64Array) {
    if (dtype === 'I64') return asBytes(data);
  } else if (data instanceof Int32Array) {
    if (dtype === 'I32') return asBytes(data);
  } else if (data instanceof Uint8Array) {
    return data;
  }
  throw new AtelierError('INTERNAL', `cannot write ${data.constructor.name} as ${dtype} for tensor "${name}"`);
}

/**
 * Writes a .safetensors file tensor by tensor: header first (padded with spaces to a multiple
 * of 8 bytes), then each tensor's bytes in order. Writes `file.tmp-<pid>` and renames, so an
 * interrupted write never leaves a partial file under the final name.
 */
export async function writeSafetensors(file: string, entries: WriteEntry[], metadata?: Record<string, string>): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.name) || e.name === '__metadata__') throw new AtelierError('INTERNAL', `duplicate tensor name "${e.name}"`);
    seen.add(e.name);
    const bytes = numel(e.shape) * DTYPE_SIZE[e.dtype];
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    await fh.write(len);
    await fh.write(json);
    for (const e of entries) {
      const data = typeof e.data === 'function' ? await e.data() : e.data;
      const bytes = encodeTensor(data, e.dtype, e.name);
      const expected = numel(e.shape) * DTYPE_SIZE[e.dtype];
      if (bytes.byteLength !== expected) {
        throw new AtelierError('INTERNAL', `tensor "${e.name}": ${bytes.byteLength} bytes for shape ${JSON.stringify(e.shape)} ${e.dtype} (need ${expected})`);
      }
      let done = 0;
      while (done < bytes.byteLength) {
        const { bytesWritten } = await fh.write(bytes, done, bytes.byteLength - done);
        done += bytesWritten;
      }
    }
    await fh.close();
    await rename(tmp, file);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Size and mtime of a file (for fingerprints). */
export async function fileStamp(file: string): Promise<{ size: number; mtimeMs: number }> {
  const s = await stat(file);
  return { size: s.size, mtimeMs: s.mtimeMs };
}

/** Reading named tensors of a reference fixture (`*.safetensors` written by the oracle tools). */
import { readSafetensorsHeader, readTensorF32, readTensorRaw, tensorRefOf, type SafetensorsHeader } from './safetensors.ts';

export class TraceFile {
  private constructor(readonly header: SafetensorsHeader) {}

  static async open(file: string): Promise<TraceFile> {
    return new TraceFile(await readSafetensorsHeader(file));
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  shape(name: string): number[] {
    return tensorRefOf(this.header, name).shape;
  }

  f32(name: string): Promise<Float32Array> {
    return readTensorF32(tensorRefOf(this.header, name));
  }

  async i64(name: string): Promise<BigInt64Array> {
    const raw = await readTensorRaw(tensorRefOf(this.header, name));
    return new BigInt64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  }

  async u8(name: string): Promise<Uint8Array> {
    return new Uint8Array(await readTensorRaw(tensorRefOf(this.header, name)));
  }
}

export function maxAbsErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
  }
  return m;
}

/**
 * A minimal protobuf encoder for the subset of onnx.proto (ModelProto, GraphProto, NodeProto, TensorProto,
 * ValueInfoProto, AttributeProto) that our graph builder emits. Field numbers from onnx/onnx.proto (IR 10).
 */

class Writer {
  private chunks: Uint8Array[] = [];
  private buf = new Uint8Array(1024);
  private pos = 0;
  length = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = new Uint8Array(Math.max(n, this.buf.length * 2));
  }

  private flush(): void {
    if (this.pos > 0) this.chunks.push(this.buf.slice(0, this.pos));
    this.pos = 0;
  }

  varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    if (x < 0x80n) {
      this.buf[this.pos++] = Number(x);
      this.length += 1;
      return;
    }
    while (x >= 0x80n) {
      this.buf[this.pos++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
      this.length += 1;
    }
    this.buf[this.pos++] = Number(x);
    this.length += 1;
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  bytes(data: Uint8Array): void {
    this.ensure(data.length);
    if (data.length > 65536) {
      this.flush();
      this.chunks.push(data);
    } else {
      this.buf.set(data, this.pos);
      this.pos += data.length;
    }
    this.length += data.length;
  }

  fixed32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.bytes(b);
  }

  finish(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

const utf8 = new TextEncoder();

/** One protobuf message under construction. */
export class Msg {
  private w = new Writer();

  int(field: number, v: number | bigint | undefined): this {
    if (v === undefined) return this;
    this.w.tag(field, 0);
    this.w.varint(v);
    return this;
  }

  ints(field: number, vs: readonly (number | bigint)[]): this {
    for (const v of vs) this.int(field, v);
    return this;
  }

  float(field: number, v: number): this {
    this.w.tag(field, 5);
    this.w.fixed32(v);
    return this;
  }

  floats(field: number, vs: readonly number[]): this {
    for (const v of vs) this.float(field, v);
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.w.tag(field, 2);
    this.w.varint(data.length);
    this.w.bytes(data);
    return this;
  }

  str(field: number, s: string | undefined): this {
    if (s === undefined) return this;
    return this.bytes(field, utf8.encode(s));
  }

  strs(field: number, ss: readonly string[]): this {
    for (const s of ss) this.str(field, s);
    return this;
  }

  msg(field: number, m: Msg): this {
    return this.bytes(field, m.finish());
  }

  msgs(field: number, ms: readonly Msg[]): this {
    for (const m of ms) this.msg(field, m);
    return this;
  }

  finish(): Uint8Array {
    return this.w.finish();
  }
}

/** onnx TensorProto.DataType */
export const DataType = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  bfloat16: 16,
} as const;
export type ElemType = keyof typeof DataType;

/** onnx AttributeProto.AttributeType */
export const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

export type Dim = number | string;

export function tensorShapeProto(dims: readonly Dim[]): Msg {
  const shape = new Msg();
  for (const d of dims) {
    const dim = new Msg();
    if (typeof d === 'number') dim.int(1, d);
    else dim.str(2, d);
    shape.msg(1, dim);
  }
  return shape;
}

export function valueInfoProto(name: string, elem: ElemType, dims: readonly Dim[] | undefined): Msg {
  const tensorType = new Msg().int(1, DataType[elem]);
  if (dims) tensorType.msg(2, tensorShapeProto(dims));
  const type = new Msg().msg(1, tensorType);
  return new Msg().str(1, name).msg(2, type);
}

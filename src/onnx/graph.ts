/**
 * Graph builder: networks are written as TypeScript calls that emit ONNX nodes (opset 21, IR 10).
 * Weights are external initializers that point into the checkpoint's own files (never copied into the graph).
 * 16-bit weights stay 16-bit in memory: see `weight`.
 */
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import { AttrType, DataType, Msg, valueInfoProto, type Dim, type ElemType } from './proto.ts';
import type { TensorRef } from '../weights/types.ts';

export type Value = string;
export type AttrValue = number | string | number[] | string[] | { floats: number[] } | { int: number } | { float: number };
export type Attrs = Record<string, AttrValue | undefined>;

export const OPSET = 21;
export const IR_VERSION = 10;
export const MS_DOMAIN = 'com.microsoft';

interface Initializer {
  proto: Msg;
}

interface ExternalRef {
  name: string;
  ref: TensorRef;
  /** element type of the stored bytes (float32 unless added by `quantWeight`) */
  elem?: ElemType;
}

/** Stored weight dtypes a graph takes, and their ONNX element types. */
const WEIGHT_ELEM: Partial<Record<TensorRef['dtype'], ElemType>> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

function attrProto(name: string, v: AttrValue): Msg {
  const a = new Msg().str(1, name);
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return a.int(3, v).int(20, AttrType.INT);
    return a.float(2, v).int(20, AttrType.FLOAT);
  }
  if (typeof v === 'string') return a.str(4, v).int(20, AttrType.STRING);
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') return a.strs(9, v as string[]).int(20, AttrType.STRINGS);
    return a.ints(8, v as number[]).int(20, AttrType.INTS);
  }
  if ('floats' in v) return a.floats(7, v.floats).int(20, AttrType.FLOATS);
  if ('float' in v) return a.float(2, v.float).int(20, AttrType.FLOAT);
  return a.int(3, v.int).int(20, AttrType.INT);
}

function tensorProto(name: string, elem: ElemType, dims: readonly number[], raw: Uint8Array): Msg {
  return new Msg().ints(1, dims).int(2, DataType[elem]).str(8, name).bytes(9, raw);
}

export class GraphBuilder {
  readonly name: string;
  private nodes: Msg[] = [];
  private inits: Initializer[] = [];
  private externals: ExternalRef[] = [];
  /** Cast nodes of 16-bit weights, serialised before every other node (see `weight`) */
  private castNodes: Msg[] = [];
  /** weight name → the float32 value the network uses (the name itself, or its Cast output) */
  private weightValues = new Map<string, Value>();
  private inputs: Msg[] = [];
  private outputs: Msg[] = [];
  private used = new Set<string>();
  private counter = 0;
  private constCache = new Map<string, Value>();
  private scopes: string[] = [];

  constructor(name: string) {
    this.name = name;
  }

  /** Run `fn` with node names prefixed by `prefix` (readability of profiles and errors only). */
  scoped<T>(prefix: string, fn: () => T): T {
    this.scopes.push(prefix);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  fresh(hint: string): Value {
    const base = [...this.scopes, hint].join('/');
    let n = `${base}_${this.counter++}`;
    while (this.used.has(n)) n = `${base}_${this.counter++}`;
    this.used.add(n);
    return n;
  }

  input(name: string, elem: ElemType, dims: readonly Dim[]): Value {
    this.used.add(name);
    this.inputs.push(valueInfoProto(name, elem, dims));
    return name;
  }

  output(v: Value, name: string, elem: ElemType = 'float32', dims?: readonly Dim[]): void {
    if (v !== name) this.op('Identity', [v], {}, { outputs: [name] });
    this.outputs.push(valueInfoProto(name, elem, dims));
  }

  /**
   * A weight stored in a checkpoint file: an external initializer pointing at its byte range, as float32.
   *
   * F32 weights are plain initializers. F16/BF16 weights stay 16-bit in memory and are cast to float32 at each run:
   * the initializer is also declared a graph input (an overridable initializer), which onnxruntime memory-maps and
   * never constant-folds into a float32 copy, and its Cast node is serialised before all other nodes so that
   * onnxruntime's depth-first execution order runs each Cast just before its consumer (measured: otherwise every
   * cast result is alive at once). Computation stays float32: for a 16-bit checkpoint the values are exactly the
   * ones of a float32 copy, at half the resident memory.
   */
  weight(name: string, ref: TensorRef): Value {
    const hit = this.weightValues.get(name);
    if (hit) return hit;
    const dims = ref.transposed ? [ref.shape[1], ref.shape[0]] : ref.shape;
    const elem = WEIGHT_ELEM[ref.dtype];
    if (!elem) {
      throw new AtelierError('INTERNAL', `weight "${name}" is ${ref.dtype}; graphs take F32, F16 or BF16 weights (convert the component first)`);
    }
    this.used.add(name);
    this.externals.push({ name, ref: { ...ref, shape: dims }, elem });
    if (elem === 'float32') {
      this.weightValues.set(name, name);
      return name;
    }
    this.inputs.push(valueInfoProto(name, elem, dims));
    const out = this.fresh(`${name}/f32`);
    this.used.add(out);
    this.castNodes.push(new Msg().strs(1, [name]).strs(2, [out]).str(3, this.fresh('Cast_weight_node')).str(4, 'Cast').msg(5, attrProto('to', DataType.float32)));
    this.weightValues.set(name, out);
    return out;
  }

  /** An int8/uint8 weight (quantised cache file) as an external initializer of its exact stored shape. */
  quantWeight(name: string, ref: TensorRef): Value {
    const elem = ref.dtype === 'I8' ? 'int8' : ref.dtype === 'U8' ? 'uint8' : undefined;
    if (!elem || ref.transposed) throw new AtelierError('INTERNAL', `quantised weight "${name}" is ${ref.dtype}${ref.transposed ? ' (transposed)' : ''}; need stored I8 or U8`);
    if (this.used.has(name)) return name;
    this.used.add(name);
    this.externals.push({ name, ref, elem });
    return name;
  }

  constF32(data: readonly number[] | Float32Array, dims: readonly number[]): Value {
    const arr = data instanceof Float32Array ? data : Float32Array.from(data);
    const key = dims.length === 0 && arr.length === 1 ? `f32:${arr[0]}` : undefined;
    if (key && this.constCache.has(key)) return this.constCache.get(key)!;
    const name = this.fresh('const_f32');
    this.inits.push({ proto: tensorProto(name, 'float32', dims, new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength)) });
    if (key) this.constCache.set(key, name);
    return name;
  }

  /** An inline int8 tensor (quantised weights built in memory). */
  constI8(data: Int8Array, dims: readonly number[]): Value {
    const name = this.fresh('const_i8');
    this.inits.push({ proto: tensorProto(name, 'int8', dims, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) });
    return name;
  }

  /** An inline uint8 tensor (zero points). */
  constU8(data: Uint8Array, dims: readonly number[]): Value {
    const name = this.fresh('const_u8');
    this.inits.push({ proto: tensorProto(name, 'uint8', dims, data) });
    return name;
  }

  constI64(data: readonly number[], dims?: readonly number[]): Value {
    const d = dims ?? [data.length];
    const key = `i64:${d.join('x')}:${data.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.fresh('const_i64');
    const arr = BigInt64Array.from(data.map((x) => BigInt(x)));
    this.inits.push({ proto: tensorProto(name, 'int64', d, new Uint8Array(arr.buffer)) });
    this.constCache.set(key, name);
    return name;
  }

  scalar(v: number): Value {
    return this.constF32([v], []);
  }

  op(opType: string, inputs: readonly (Value | '')[], attrs: Attrs = {}, opts: { domain?: string; outputs?: string[]; numOutputs?: number } = {}): Value {
    return this.opMulti(opType, inputs, attrs, opts)[0];
  }

  opMulti(opType: string, inputs: readonly (Value | '')[], attrs: Attrs = {}, opts: { domain?: string; outputs?: string[]; numOutputs?: number } = {}): Value[] {
    const outs = opts.outputs ?? Array.from({ length: opts.numOutputs ?? 1 }, () => this.fresh(opType));
    for (const o of outs) this.used.add(o);
    const node = new Msg().strs(1, inputs).strs(2, outs).str(3, this.fresh(`${opType}_node`)).str(4, opType);
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) node.msg(5, attrProto(k, v));
    if (opts.domain) node.str(7, opts.domain);
    this.nodes.push(node);
    return outs;
  }

  /** Names of the external weights, for checks. */
  weightNames(): string[] {
    return this.externals.map((e) => e.name);
  }

  /**
   * Serialise. External weights get `location` relative to `externalRoot` (onnxruntime loads them from the folder
   * passed as session option `model_external_initializers_file_folder_path`).
   */
  build(externalRoot: string): Uint8Array {
    const graph = new Msg().msgs(1, [...this.castNodes, ...this.nodes]).str(2, this.name);
    for (const init of this.inits) graph.msg(5, init.proto);
    for (const { name, ref, elem } of this.externals) {
      const rel = path.relative(externalRoot, ref.file);
      if (rel.startsWith('..') || path.isAbsolute(rel)) {
        throw new AtelierError('INTERNAL', `weight "${name}" lives in ${ref.file}, outside ${externalRoot}`);
      }
      const t = new Msg().ints(1, ref.shape).int(2, DataType[elem ?? 'float32']).str(8, name);
      const entry = (k: string, v: string) => new Msg().str(1, k).str(2, v);
      t.msg(13, entry('location', rel.split(path.sep).join('/')));
      t.msg(13, entry('offset', String(ref.byteOffset)));
      t.msg(13, entry('length', String(ref.byteLength)));
      t.int(14, 1);
      graph.msg(5, t);
    }
    graph.msgs(11, this.inputs).msgs(12, this.outputs);
    const model = new Msg()
      .int(1, IR_VERSION)
      .str(2, 'atelier')
      .msg(7, graph)
      .msg(8, new Msg().str(1, '').int(2, OPSET))
      .msg(8, new Msg().str(1, MS_DOMAIN).int(2, 1));
    return model.finish();
  }
}

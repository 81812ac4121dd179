/**
 * Benchmark-only helper: a tiny ONNX ModelProto writer whose initializers may be any element type (int8/uint8
 * weights inline), for single-op micro-benchmarks of onnxruntime's quantised kernels. Field numbers: onnx/onnx.proto.
 */
import { AttrType, DataType, Msg, valueInfoProto, type Dim, type ElemType } from '../src/onnx/proto.ts';

export type MiniAttr = number | number[] | { float: number } | string;

export class MiniModel {
  private nodes: Msg[] = [];
  private inits: Msg[] = [];
  private inputs: Msg[] = [];
  private outputs: Msg[] = [];
  private n = 0;

  input(name: string, elem: ElemType, dims: Dim[]): string {
    this.inputs.push(valueInfoProto(name, elem, dims));
    return name;
  }

  output(name: string, elem: ElemType = 'float32'): void {
    this.outputs.push(valueInfoProto(name, elem, undefined));
  }

  init(elem: ElemType, dims: number[], data: ArrayBufferView, hint = 'w'): string {
    const name = `${hint}_${this.n++}`;
    const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.inits.push(new Msg().ints(1, dims).int(2, DataType[elem]).str(8, name).bytes(9, raw));
    return name;
  }

  node(op: string, inputs: string[], attrs: Record<string, MiniAttr> = {}, opts: { domain?: string; outputs?: string[]; numOutputs?: number } = {}): string[] {
    const outs = opts.outputs ?? Array.from({ length: opts.numOutputs ?? 1 }, () => `${op}_${this.n++}`);
    const node = new Msg().strs(1, inputs).strs(2, outs).str(3, `${op}_node_${this.n++}`).str(4, op);
    for (const [k, v] of Object.entries(attrs)) {
      const a = new Msg().str(1, k);
      if (typeof v === 'string') a.str(4, v).int(20, AttrType.STRING);
      else if (typeof v === 'number') a.int(3, v).int(20, AttrType.INT);
      else if (Array.isArray(v)) a.ints(8, v).int(20, AttrType.INTS);
      else a.float(2, v.float).int(20, AttrType.FLOAT);
      node.msg(5, a);
    }
    if (opts.domain) node.str(7, opts.domain);
    this.nodes.push(node);
    return outs;
  }

  build(): Uint8Array {
    const graph = new Msg().msgs(1, this.nodes).str(2, 'bench').msgs(5, this.inits).msgs(11, this.inputs).msgs(12, this.outputs);
    return new Msg()
      .int(1, 10)
      .str(2, 'atelier-bench')
      .msg(7, graph)
      .msg(8, new Msg().str(1, '').int(2, 21))
      .msg(8, new Msg().str(1, 'com.microsoft').int(2, 1))
      .finish();
  }
}

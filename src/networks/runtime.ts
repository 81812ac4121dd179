/**
 * A built network bound to an onnxruntime session: the folder its external weights live in, its LoRA slots,
 * and cached empty LoRA feeds.
 */
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import type { GraphBuilder } from '../onnx/graph.ts';
import { Session, type SessionOptions, type TensorIn, type TensorOut } from '../onnx/session.ts';
import type { TensorRef } from '../weights/types.ts';
import { emptyLoraFeeds, type LoraSlot } from './blocks.ts';

/** The one folder holding every weight file of a component (external data must be relative to one folder). */
/** One network's LoRA factor inputs for one run (graph input name → tensor); absent names run rank 0. */
export type LoraFeeds = Record<string, TensorIn>;

export function weightsFolder(weights: Map<string, TensorRef>, component: string): string {
  let dir: string | undefined;
  for (const r of weights.values()) {
    const d = path.dirname(r.file);
    if (dir === undefined) dir = d;
    else if (d !== dir) {
      throw new AtelierError('CHECKPOINT_INVALID', `${component}: weights are spread over ${dir} and ${d}; one folder is required`);
    }
  }
  if (dir === undefined) throw new AtelierError('CHECKPOINT_INVALID', `${component}: no weights`);
  return dir;
}

export interface BuiltNetwork {
  graph: GraphBuilder;
  weights: Map<string, TensorRef>;
  loraSlots: LoraSlot[];
  label: string;
}

export type SessionSettings = Omit<SessionOptions, 'externalFolder' | 'label'> & {
  /** create the onnxruntime session at the first run instead of now (its memory is taken only when needed) */
  lazy?: boolean;
};

export class NetworkSession {
  readonly label: string;
  readonly loraSlots: readonly LoraSlot[];
  private session: Promise<Session> | null;
  private open: (() => Promise<Session>) | null;
  private readonly noLora: Record<string, TensorIn>;

  private constructor(open: () => Promise<Session>, built: BuiltNetwork, lazy: boolean) {
    this.label = built.label;
    this.loraSlots = built.loraSlots;
    this.noLora = emptyLoraFeeds(built.loraSlots);
    this.open = open;
    this.session = lazy ? null : open();
  }

  static async create(built: BuiltNetwork, settings: SessionSettings = {}): Promise<NetworkSession> {
    const { lazy, ...options } = settings;
    const folder = weightsFolder(built.weights, built.label);
    const open = () => Session.create(built.graph.build(folder), { ...options, externalFolder: folder, label: built.label });
    const net = new NetworkSession(open, built, lazy ?? false);
    if (net.session) await net.session;
    return net;
  }

  /** Run with the given inputs; LoRA factors default to empty (no adapter). */
  async run(inputs: Record<string, TensorIn>, lora?: LoraFeeds): Promise<Record<string, TensorOut>> {
    if (!this.session) {
      if (!this.open) throw new AtelierError('INTERNAL', `session ${this.label} was released`);
      this.session = this.open();
    }
    return (await this.session).run({ ...this.noLora, ...(lora ?? {}), ...inputs });
  }

  async release(): Promise<void> {
    const s = this.session;
    this.session = null;
    this.open = null;
    if (s) await (await s).release();
  }
}

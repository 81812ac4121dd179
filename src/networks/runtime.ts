/**
 * A built network bound to an onnxruntime session: the folder its external weights live in, its LoRA slots,
 * and cached empty LoRA feeds.
 */
import path from 'node:path';
import { AtelierError } from '../errors.ts';
import type { GraphBuilder } from '../onnx/graph.ts';
import { Session, type SessionOptions, type TensorIn, type TensorOut } from '../onnx/session.ts';
import type { TensorRef } from '../weights/types.ts';
import { emptyLoraFeeds, type LoraSlot } from './blocks.ts';

/** The one folder holding every weight file of a component (external data must be relative to one folder). */
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

export type SessionSettings = Omit<SessionOptions, 'externalFolder' | 'label'>;

export class NetworkSession {
  readonly label: string;
  readonly loraSlots: readonly LoraSlot[];
  private readonly session: Session;
  private readonly noLora: Record<string, TensorIn>;

  private constructor(session: Session, built: BuiltNetwork) {
    this.session = session;
    this.label = built.label;
    this.loraSlots = built.loraSlots;
    this.noLora = emptyLoraFeeds(built.loraSlots);
  }

  static async create(built: BuiltNetwork, settings: SessionSettings = {}): Promise<NetworkSession> {
    const folder = weightsFolder(built.weights, built.label);
    const bytes = built.graph.build(folder);
    const session = await Session.create(bytes, { ...settings, externalFolder: folder, label: built.label });
    return new NetworkSession(session, built);
  }

  /** Run with the given inputs; LoRA factors default to empty (no adapter). */
  async run(inputs: Record<string, TensorIn>, lora?: Record<string, TensorIn>): Promise<Record<string, TensorOut>> {
    return this.session.run({ ...this.noLora, ...(lora ?? {}), ...inputs });
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

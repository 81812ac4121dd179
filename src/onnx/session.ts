/**
 * The only module that imports onnxruntime. Sessions are created from graphs built in memory whose weights are
 * external data inside one folder, and are released explicitly.
 */
import ort from 'onnxruntime-node';
import { DEVICE_PROVIDERS, type Device } from '../contract/tables.ts';
import { AtelierError } from '../contract/errors.ts';

export type Provider = Device;
/** Device name → onnxruntime execution providers, in preference order (the contract's frozen table). */
export const PROVIDERS = DEVICE_PROVIDERS;

export interface SessionOptions {
  /** folder that external weight `location`s are relative to */
  externalFolder?: string;
  threads?: number;
  provider?: Provider;
  /**
   * onnxruntime graph optimisation. Default 'extended': measured on full-size SDXL (2 cores) it creates the UNet
   * session 30–70 s faster than 'all' and no run was faster with 'all' (its NCHWc Conv rewrite copies every Conv
   * weight and convolutions are only ~19 % of a step); see bench/unet-forward.ts.
   */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** false keeps MatMul weights memory-mapped instead of copying them into prepacked buffers */
  prepacking?: boolean;
  /**
   * onnxruntime's CPU memory arena (default true): keeps the largest activation memory of any run allocated for the
   * session's lifetime. false returns it to the system after each run (a little slower per run, lower peaks when
   * several networks run one after the other).
   */
  arena?: boolean;
  /** cache of onnxruntime's optimised model (and its external weights) */
  optimizedModelPath?: string;
  label?: string;
}

export type Feed = Float32Array | BigInt64Array | Int32Array | Uint8Array;
export interface TensorIn {
  data: Feed;
  dims: readonly number[];
}
export interface TensorOut {
  data: Float32Array | BigInt64Array | Int32Array | Uint8Array;
  dims: readonly number[];
}

const ELEM: Record<string, 'float32' | 'int64' | 'int32' | 'uint8'> = {
  Float32Array: 'float32',
  BigInt64Array: 'int64',
  Int32Array: 'int32',
  Uint8Array: 'uint8',
};

export class Session {
  readonly label: string;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  private inner: ort.InferenceSession | null;

  private constructor(inner: ort.InferenceSession, label: string) {
    this.inner = inner;
    this.label = label;
    this.inputNames = inner.inputNames;
    this.outputNames = inner.outputNames;
  }

  static async create(model: Uint8Array, opts: SessionOptions = {}): Promise<Session> {
    const session: Record<string, string> = {};
    if (opts.externalFolder) session.model_external_initializers_file_folder_path = opts.externalFolder;
    if (opts.prepacking === false) session['session.disable_prepacking'] = '1';
    if (opts.optimizedModelPath) {
      session['session.optimized_model_external_initializers_file_name'] = 'weights.bin';
      session['session.optimized_model_external_initializers_min_size_in_bytes'] = '1024';
    }
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: [...PROVIDERS[opts.provider ?? 'cpu']],
      graphOptimizationLevel: opts.optimization ?? 'extended',
      intraOpNumThreads: opts.threads ?? 0,
      interOpNumThreads: 1,
      enableCpuMemArena: opts.arena ?? true,
      enableMemPattern: true,
      executionMode: 'sequential',
      logSeverityLevel: 3,
      ...(opts.optimizedModelPath ? { optimizedModelFilePath: opts.optimizedModelPath } : {}),
      extra: { session },
    };
    try {
      const inner = await ort.InferenceSession.create(model, options);
      return new Session(inner, opts.label ?? 'session');
    } catch (cause) {
      const hint =
        opts.provider && opts.provider !== 'cpu'
          ? ` (device "${opts.provider}": install onnxruntime's GPU libraries with \`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js\`; available here: ${availableProviders().join(', ')})`
          : '';
      throw new AtelierError('INTERNAL', `onnxruntime could not create the ${opts.label ?? ''} session: ${(cause as Error).message}${hint}`, { cause });
    }
  }

  async run(feeds: Record<string, TensorIn>, outputs?: readonly string[]): Promise<Record<string, TensorOut>> {
    if (!this.inner) throw new AtelierError('INTERNAL', `session ${this.label} was released`);
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      const type = ELEM[t.data.constructor.name];
      ortFeeds[name] = new ort.Tensor(type, t.data, t.dims as number[]);
    }
    let result: ort.InferenceSession.ReturnType;
    try {
      result = outputs ? await this.inner.run(ortFeeds, outputs as string[]) : await this.inner.run(ortFeeds);
    } catch (cause) {
      throw new AtelierError('INTERNAL', `onnxruntime failed running ${this.label}: ${(cause as Error).message}`, { cause });
    }
    const out: Record<string, TensorOut> = {};
    for (const [name, t] of Object.entries(result)) {
      out[name] = { data: t.data as TensorOut['data'], dims: t.dims };
    }
    return out;
  }

  async release(): Promise<void> {
    const s = this.inner;
    this.inner = null;
    if (s) await s.release();
  }
}

export function availableProviders(): string[] {
  return ort.listSupportedBackends().map((b) => b.name);
}

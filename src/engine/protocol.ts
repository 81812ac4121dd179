/** Typed messages between the engine (main thread) and its worker thread. */
import type { WeightPrecision } from '../weights/types.ts';
import type { UNetQuantization, VaeQuantScheme } from '../contract/tables.ts';
import type { GenerateRequest, GenerateResult, ModelInfo, ProgressEvent } from '../contract/types.ts';

export interface WorkerInit {
  models: { name: string; path: string; isTestModel?: boolean }[];
  defaultModel?: string;
  dataDir: string;
  threads?: number;
  /** execution provider: cpu (default), cuda, tensorrt, webgpu (needs an onnxruntime build with it) */
  device?: 'cpu' | 'cuda' | 'tensorrt' | 'webgpu';
  /** reduced-precision UNet Linear layers: 'int8' (DynamicQuantizeMatMul) or 'int8-block' (MatMulNBits, 8 bits) */
  quantize?: UNetQuantization;
  /** VAE decoder resnet convolutions in int8 (QLinearConv, calibrated once per checkpoint); undefined = fp32 */
  vaeQuantize?: VaeQuantScheme;
  /** how UNet and text-encoder weights are held: 'fp32' (default, fastest on CPU) or 'fp16' (half the memory) */
  weights?: WeightPrecision;
  /**
   * one generation and done (the CLI): the UNet and VAE sessions are created when first needed and each network is
   * released as soon as the pipeline is past it (text encoders after conditioning, UNet and VAE encoder after
   * denoising), so their memory does not add up at the peak; above ~724² the UNet takes the CFG pair one sample
   * at a time
   */
  oneShot?: boolean;
  /** how many models stay loaded at once (least recently used is released first) */
  maxLoadedModels: number;
}

export type ToWorker =
  | { type: 'generate'; id: number; request: GenerateRequest; cancel: SharedArrayBuffer }
  | { type: 'shutdown' };

export type FromWorker =
  | { type: 'ready'; models: ModelInfo[] }
  | { type: 'progress'; id: number; event: ProgressEvent }
  | { type: 'log'; id: number; line: string }
  | { type: 'result'; id: number; result: GenerateResult }
  | { type: 'error'; id: number; error: { code: string; message: string; field?: string } }
  | { type: 'fatal'; message: string };

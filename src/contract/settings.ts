/**
 * EngineSettings: everything that decides how the engine runs, in one type — parsed once from flags and
 * environment (ENGINE_OPTIONS, by the one option parser) for `serve`, `generate` and `bench`, and passed unchanged
 * from the configuration to the engine's worker thread and its model manager.
 */
import path from 'node:path';
import { optionError, type OptionSpec, type ParsedOptions } from './options.ts';
import {
  DEVICES,
  UNET_QUANTIZATIONS,
  VAE_QUANTIZATIONS,
  WEIGHT_PRECISIONS,
  type Device,
  type UNetQuantization,
  type VaeQuantScheme,
  type WeightPrecision,
} from './tables.ts';

/** A checkpoint to serve. */
export interface ModelEntry {
  /** what requests call it (`model`) */
  name: string;
  /** absolute: a .safetensors file or a diffusers folder */
  path: string;
  /** the built-in random test model (its images are noise) */
  isTestModel?: boolean;
  /** a diffusers config folder for a single file whose widths are not SDXL's (diffusers' `from_single_file(config=…)`) */
  config?: string;
}

export interface EngineSettings {
  models: ModelEntry[];
  /** the model of a request that names none (default: the first) */
  defaultModel?: string;
  /** absolute; caches live in <dataDir>/cache */
  dataDir: string;
  /** compute threads; undefined = all cores */
  threads?: number;
  /** onnxruntime execution provider */
  device: Device;
  /** how UNet and text-encoder weights are held in memory */
  weights: WeightPrecision;
  /** reduced-precision UNet; undefined = fp32 */
  quantize?: UNetQuantization;
  /** int8 VAE decoder convolutions; undefined = fp32 */
  vaeQuantize?: VaeQuantScheme;
  /**
   * one generation and done (the CLI): each network is created when the pipeline reaches it and released as soon
   * as it is past it, so their memory does not add up at the peak
   */
  oneShot: boolean;
  /** models kept loaded at once (least recently used released first) */
  maxLoadedModels: number;
}

/** The flags and variables of the engine settings (every command that runs the engine takes them). */
export const ENGINE_OPTIONS: readonly OptionSpec[] = Object.freeze([
  { flag: 'model', env: 'ATELIER_MODEL', kind: 'list', help: 'checkpoint: a .safetensors file or diffusers folder; repeat or comma-separate for several' },
  { flag: 'config', env: 'ATELIER_MODEL_CONFIG', kind: 'string', help: "diffusers config folder (unet/, vae/, text_encoder*/ config.json) for a single-file --model whose widths are not SDXL's" },
  { flag: 'default-model', env: 'ATELIER_DEFAULT_MODEL', kind: 'string', help: 'model used when a request names none (default: the first)' },
  { flag: 'data-dir', env: 'ATELIER_DATA_DIR', kind: 'string', help: 'job store, outputs and caches (default ./data)' },
  { flag: 'threads', env: 'ATELIER_THREADS', kind: 'integer', min: 1, max: 1024, help: 'engine compute threads (default: all cores)' },
  { flag: 'device', env: 'ATELIER_DEVICE', kind: 'string', values: DEVICES, help: 'execution provider (default cpu; GPU ones need onnxruntime GPU libraries)' },
  {
    flag: 'weights',
    env: 'ATELIER_WEIGHTS',
    kind: 'string',
    values: WEIGHT_PRECISIONS,
    help: 'fp32 (default, fastest on CPU) or fp16: UNet and text-encoder weights held in 16 bits (half the memory, computed in fp32)',
  },
  {
    flag: 'quantize',
    env: 'ATELIER_QUANTIZE',
    kind: 'string',
    values: [...UNET_QUANTIZATIONS, 'off'],
    help: "int8 / int8-block: the UNet's transformer Linear layers in int8; int8-full: and its resnet convolutions (fastest; calibrated once per checkpoint). Slightly different images; default off = fp32",
  },
  {
    flag: 'vae-quantize',
    env: 'ATELIER_VAE_QUANTIZE',
    kind: 'string',
    values: [...VAE_QUANTIZATIONS, 'off'],
    help: "int8: the VAE decoder's resnet convolutions in int8 (decode ~1.5× faster on CPU, images within ~1 level; calibrated once per checkpoint); default off",
  },
  { flag: 'max-loaded-models', env: 'ATELIER_MAX_LOADED_MODELS', kind: 'integer', min: 1, max: 64, help: 'models kept loaded at once, least recently used released first (default 1)' },
] satisfies OptionSpec[]);

/** A model's name from its path: the file or folder name without `.safetensors`. */
export function modelName(abs: string): string {
  return path.basename(abs).replace(/\.(safetensors|ckpt)$/i, '');
}

/** EngineSettings from parsed options (ENGINE_OPTIONS among them); paths are resolved against `cwd`. */
export function engineSettingsFrom(parsed: ParsedOptions, cwd: string, opts: { oneShot?: boolean } = {}): EngineSettings {
  const v = parsed.values;
  const models: ModelEntry[] = ((v.model as string[] | undefined) ?? []).map((p) => {
    const abs = path.resolve(cwd, p);
    return { name: modelName(abs), path: abs };
  });
  const config = v.config as string | undefined;
  if (config !== undefined) {
    if (models.length !== 1) throw optionError(ENGINE_OPTIONS[1], config, `exactly one --model for it to describe (got ${models.length})`);
    models[0]!.config = path.resolve(cwd, config);
  }
  const quantize = v.quantize as string | undefined;
  const vaeQuantize = v['vae-quantize'] as string | undefined;
  return engineSettings({
    models,
    dataDir: path.resolve(cwd, (v['data-dir'] as string | undefined) ?? './data'),
    ...(v['default-model'] !== undefined ? { defaultModel: v['default-model'] as string } : {}),
    ...(v.threads !== undefined ? { threads: v.threads as number } : {}),
    ...(v.device !== undefined ? { device: v.device as Device } : {}),
    ...(v.weights !== undefined ? { weights: v.weights as WeightPrecision } : {}),
    ...(quantize !== undefined && quantize !== 'off' ? { quantize: quantize as UNetQuantization } : {}),
    ...(vaeQuantize !== undefined && vaeQuantize !== 'off' ? { vaeQuantize: vaeQuantize as VaeQuantScheme } : {}),
    ...(v['max-loaded-models'] !== undefined ? { maxLoadedModels: v['max-loaded-models'] as number } : {}),
    oneShot: opts.oneShot ?? false,
  });
}

/** Complete settings from the ones given; the rest take their defaults. */
export function engineSettings(given: Pick<EngineSettings, 'models' | 'dataDir'> & Partial<EngineSettings>): EngineSettings {
  return { device: 'cpu', weights: 'fp32', oneShot: false, maxLoadedModels: 1, ...given };
}

/**
 * Keeps built models warm: one set of sessions per checkpoint (text encoders, UNet, VAE encoder/decoder,
 * tokenizers), released least-recently-used first when more than `maxLoadedModels` are open.
 */
import os from 'node:os';
import path from 'node:path';
import type { EngineSettings, ModelEntry } from '../contract/settings.ts';
import { AtelierError } from '../contract/errors.ts';
import { loadModel } from '../weights/load-model.ts';
import { TextEncoder } from '../networks/clip-text.ts';
import { UNet } from '../networks/unet.ts';
import { VaeDecoder, VaeEncoder, vaeScaleFactor } from '../networks/vae.ts';
import { ClipTokenizer } from '../tokenizer/clip-bpe.ts';
import { DEFAULT_MAX_BATCH_LATENT_PIXELS, type PipelineModel } from '../pipeline/generate.ts';
import type { SdxlModel } from '../weights/types.ts';
import type { SessionSettings } from '../networks/runtime.ts';
import { quantizationParts } from '../quant/linear-schemes.ts';
import { ensureQuantized } from '../quant/quantized-weights.ts';
import { quantizedLinearLayers } from '../quant/quantized-linear.ts';
import { int8ConvLayers } from '../quant/int8-conv.ts';
import { unetInt8Convs } from '../quant/unet-calibration.ts';
import { decoderInt8Convs } from '../quant/vae-calibration.ts';
import { decoderCalibrationInputs, unetCalibrationInputs } from './calibration-inputs.ts';

export interface LoadedModel {
  name: string;
  model: SdxlModel;
  pipeline: PipelineModel;
  textEncoders: [TextEncoder, TextEncoder];
  unet: UNet;
  tokenizers: [ClipTokenizer, ClipTokenizer];
  release(): Promise<void>;
}

/** What the benchmark and tests may vary beyond the engine settings. */
export interface ModelTuning {
  /** onnxruntime graph optimisation and weight prepacking (the benchmark's experiments); default: the product's */
  session?: Pick<SessionSettings, 'optimization' | 'prepacking'>;
  /** build the LoRA branch inputs (default true) */
  lora?: boolean;
}

/**
 * Open one checkpoint as these engine settings say: caches under <dataDir>/cache, sessions on the device with the
 * threads, weights held in the chosen precision, the chosen quantisations (quantised and calibrated once per
 * checkpoint into the cache), one-shot or warm.
 */
export async function openModel(entry: ModelEntry, settings: EngineSettings, tuning: ModelTuning = {}): Promise<LoadedModel> {
  const name = entry.name;
  const cacheDir = path.join(settings.dataDir, 'cache');
  const session: SessionSettings = { threads: settings.threads ?? os.availableParallelism(), provider: settings.device, ...tuning.session };
  const model = await loadModel(entry.path, { cacheDir, weights: settings.weights, ...(entry.config !== undefined ? { config: entry.config } : {}) });
  const s = { ...session, lora: tuning.lora ?? true };
  // With 16-bit weights (the memory-lean mode) the networks that run once per generation give their activation
  // memory back after each run, so that it does not add to the UNet's during denoising (text encoders) or to the
  // UNet's arena during decoding (VAE): measured 1024² peak 10.8 → 9.3 GB, no slower. The UNet keeps its arena: it runs every step.
  const once = settings.weights === 'fp16' ? { arena: false } : {};
  const te1 = await TextEncoder.create(model, 'textEncoder1', { ...s, ...once });
  const te2 = await TextEncoder.create(model, 'textEncoder2', { ...s, ...once });
  const quant = settings.quantize ? quantizationParts(settings.quantize) : undefined;
  const unetWeights = quant
    ? await ensureQuantized(model.weights.unet, { scheme: quant.linear, cacheDir: cacheDir, fingerprint: model.fingerprint, source: model.source, component: 'unet' })
    : model.weights.unet;
  const unetModel = { ...model, weights: { ...model.weights, unet: unetWeights } };
  const tokenizers = await loadTokenizers(model);
  // `int8-full` also runs the UNet's resnet convolutions in int8 (calibrated once with the checkpoint's own text encoders)
  const unetConvs = quant?.int8Convs
    ? await unetInt8Convs(unetModel, unetCalibrationInputs(model.config.unet, { encoders: [te1, te2], tokenizers, long: 'truncate' }), { cacheDir: cacheDir, settings: s, lora: s.lora })
    : undefined;
  const unetLayers = { ...quantizedLinearLayers(unetWeights), ...(unetConvs ? int8ConvLayers(unetConvs) : {}) };
  // one-shot: the UNet and the VAE sessions are created when first run, after the text encoders are gone
  const later = settings.oneShot ? { lazy: true } : {};
  const unet = await UNet.create(unetModel, { ...s, ...later, layers: unetLayers });
  // the VAE is small: 'all' (NCHWc convolutions) costs ~1 s at creation and runs 10–15 % faster (bench/vae.ts)
  const vaeSettings = { ...session, optimization: session.optimization ?? 'all', ...once, ...later };
  const vaeEncoder = await VaeEncoder.create(model, vaeSettings);
  const int8 = settings.vaeQuantize === 'int8'
    ? await decoderInt8Convs(model, decoderCalibrationInputs(model.config.vae), { cacheDir: cacheDir, settings: { ...session, optimization: vaeSettings.optimization } })
    : undefined;
  const vaeDecoder = await VaeDecoder.create(model, vaeSettings, int8 ? int8ConvLayers(int8) : {});
  const pipeline: PipelineModel = {
    encoderSet: { encoders: [te1, te2], tokenizers },
    unet,
    vaeEncoder,
    vaeDecoder,
    scalingFactor: model.config.vae.scalingFactor,
    latentChannels: model.config.vae.latentChannels,
    vaeScaleFactor: vaeScaleFactor(model.config.vae),
    ...(settings.oneShot
      ? {
          // memory first: above 128²/2 latent cells (SDXL: ~724² px) the CFG pair goes through the UNet one sample at a time
          maxBatchLatentPixels: DEFAULT_MAX_BATCH_LATENT_PIXELS / 2,
          afterConditioning: async () => Promise.all([te1.release(), te2.release()]).then(() => undefined),
          afterDenoising: async () => Promise.all([unet.release(), vaeEncoder.release()]).then(() => undefined),
        }
      : {}),
  };
  return {
    name,
    model,
    pipeline,
    textEncoders: [te1, te2],
    unet,
    tokenizers,
    async release() {
      await Promise.all([te1.release(), te2.release(), unet.release(), vaeEncoder.release(), vaeDecoder.release()]);
    },
  };
}

async function loadTokenizers(model: SdxlModel): Promise<[ClipTokenizer, ClipTokenizer]> {
  if (model.tokenizers) {
    return [
      await ClipTokenizer.fromFolder(path.dirname(model.tokenizers.tokenizer1.vocabJson)),
      await ClipTokenizer.fromFolder(path.dirname(model.tokenizers.tokenizer2.vocabJson)),
    ];
  }
  // SDXL's tokenizer pads with <|endoftext|>, tokenizer_2 with "!"
  return [await ClipTokenizer.standard({ padToken: '<|endoftext|>' }), await ClipTokenizer.standard({ padToken: '!' })];
}

export class ModelManager {
  private loaded = new Map<string, LoadedModel>();
  private loading = new Map<string, Promise<LoadedModel>>();
  private readonly sources: Map<string, ModelEntry>;

  constructor(private readonly engine: EngineSettings) {
    this.sources = new Map(engine.models.map((m) => [m.name, m]));
  }

  async get(name: string): Promise<LoadedModel> {
    const hit = this.loaded.get(name);
    if (hit) {
      this.loaded.delete(name); // re-insert: most recently used last
      this.loaded.set(name, hit);
      return hit;
    }
    const source = this.sources.get(name);
    if (!source) {
      throw new AtelierError('INVALID_INPUT', `model "${name}" is not served; available: ${[...this.sources.keys()].join(', ')}`, { field: 'model' });
    }
    let p = this.loading.get(name);
    if (!p) {
      p = (async () => {
        while (this.loaded.size >= this.engine.maxLoadedModels) {
          const [oldest, m] = this.loaded.entries().next().value as [string, LoadedModel];
          this.loaded.delete(oldest);
          await m.release();
        }
        return openModel(source, this.engine);
      })();
      this.loading.set(name, p);
    }
    try {
      const m = await p;
      this.loaded.set(name, m);
      return m;
    } finally {
      this.loading.delete(name);
    }
  }

  async closeAll(): Promise<void> {
    for (const m of this.loaded.values()) await m.release();
    this.loaded.clear();
  }
}

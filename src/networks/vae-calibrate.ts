/**
 * Calibration of the VAE decoder's int8 convolutions (src/networks/vae-int8.ts), once per checkpoint: the fp32
 * decoder with statistics outputs decodes a small calibration batch, then the int8 decoder decodes the same batch and
 * its image is compared with the fp32 one. Both results are cached beside the checkpoint's other derived files
 * (`<cacheDir>/<fingerprint>/vae_decoder-int8-calibration.json`). A checkpoint whose int8 image falls below
 * `MIN_SNR_DB` is refused with an error naming the setting (its activations do not suit per-tensor int8).
 *
 * The batch: 4 latents of 32×32 (the ranges are ratios, so the size does not matter) — two of white Gaussian noise,
 * two of smooth noise (8×8 noise upsampled bilinearly), each at unit variance and ÷ the scaling factor: the
 * statistics of latents the UNet produces.
 */
import { AtelierError } from '../errors.ts';
import { TorchGenerator } from '../sampling/rng.ts';
import type { TensorIn } from '../onnx/session.ts';
import { NetworkSession, type BuiltNetwork, type SessionSettings } from './runtime.ts';
import { buildVaeDecoderGraph, quantisableDecoderConvs, type VaeSource } from './vae.ts';
import {
  calibrationFile,
  int8Convs,
  mergeStats,
  readCalibration,
  snrDb,
  statNames,
  writeCalibration,
  type Calibration,
  type VaeInt8Convs,
} from './vae-int8.ts';

/**
 * Below this int8-vs-fp32 SNR on the calibration batch the int8 decoder is refused: 20 dB = an rms error of a tenth
 * of the image's standard deviation. Measured: random-weight full-size SDXL decoder 34.6 dB (37.4 dB on a held-out
 * latent), the oracle's tiny VAE (32–64 channels) 23.2 dB.
 */
export const MIN_SNR_DB = 20;

/** Bilinear (align-corners) upsampling of [c, n, n] planes to [c, m, m]. */
export function upsamplePlanes(src: Float32Array, c: number, n: number, m: number): Float32Array {
  const out = new Float32Array(c * m * m);
  const f = (n - 1) / (m - 1);
  const at = (ch: number, y: number, x: number) => src[(ch * n + y) * n + x];
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < m; y++) {
      const y0 = Math.min(n - 2, Math.floor(y * f));
      const ty = y * f - y0;
      for (let x = 0; x < m; x++) {
        const x0 = Math.min(n - 2, Math.floor(x * f));
        const tx = x * f - x0;
        const top = at(ch, y0, x0) * (1 - tx) + at(ch, y0, x0 + 1) * tx;
        const bottom = at(ch, y0 + 1, x0) * (1 - tx) + at(ch, y0 + 1, x0 + 1) * tx;
        out[(ch * m + y) * m + x] = top * (1 - ty) + bottom * ty;
      }
    }
  }
  return out;
}

function scaled(v: Float32Array, std: number): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const k = std / Math.sqrt(s / v.length || 1);
  return v.map((x) => x * k);
}

/** The decoder's calibration batch: `z` [4, latentChannels, 32, 32], already ÷ scaling factor. */
export function decoderCalibrationBatch(latentChannels: number, scalingFactor: number): TensorIn {
  const size = 32;
  const per = latentChannels * size * size;
  const data = new Float32Array(4 * per);
  for (let i = 0; i < 4; i++) {
    const g = new TorchGenerator(1000 + i);
    const z = i < 2 ? g.randn(per) : upsamplePlanes(g.randn(latentChannels * 64), latentChannels, 8, size);
    data.set(scaled(z, 1 / scalingFactor), i * per);
  }
  return { data, dims: [4, latentChannels, size, size] };
}

async function runOnce(built: BuiltNetwork, settings: SessionSettings, feeds: Record<string, TensorIn>) {
  const session = await NetworkSession.create(built, { ...settings, lazy: false });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** Calibrate the decoder now: ranges from the fp32 statistics run, then the int8 decoder's SNR on the same batch. */
export async function calibrateDecoder(model: VaeSource, settings: SessionSettings = {}): Promise<Calibration> {
  const modules = quantisableDecoderConvs(model.weights.vae);
  const feeds = { z: decoderCalibrationBatch(model.config.vae.latentChannels, model.config.vae.scalingFactor) };
  const stats = await runOnce(buildVaeDecoderGraph(model, { calibrate: true }), settings, feeds);
  const value = (name: string) => (stats[name].data as Float32Array)[0];
  const run: Record<string, { r: number; lo: number; hi: number }> = {};
  for (const m of modules) {
    const n = statNames(m);
    run[m] = { r: value(n.r), lo: value(n.lo), hi: value(n.hi) };
  }
  const ranges = mergeStats([run]);
  const int8 = await runOnce(buildVaeDecoderGraph(model, { int8: await int8Convs(model.weights.vae, ranges) }), settings, feeds);
  const snr = snrDb(stats.image.data as Float32Array, int8.image.data as Float32Array);
  return { ranges, snrDb: Math.min(snr, 999) };
}

export interface Int8DecoderSource extends VaeSource {
  fingerprint: string;
}

export interface Int8DecoderOptions {
  cacheDir: string;
  settings?: SessionSettings;
  /** refusal threshold (tests); default MIN_SNR_DB */
  minSnrDb?: number;
}

/** The decoder's int8 convolutions: calibration from the cache (or calibrated now and cached), weights quantised. */
export async function decoderInt8Convs(model: Int8DecoderSource, opts: Int8DecoderOptions): Promise<VaeInt8Convs & { calibration: Calibration; calibrated: boolean }> {
  const modules = quantisableDecoderConvs(model.weights.vae);
  const file = calibrationFile(opts.cacheDir, model.fingerprint, 'vae_decoder');
  let calibration = await readCalibration(file, model.fingerprint, modules);
  const calibrated = !calibration;
  if (!calibration) {
    calibration = await calibrateDecoder(model, opts.settings);
    await writeCalibration(file, model.fingerprint, calibration);
  }
  const min = opts.minSnrDb ?? MIN_SNR_DB;
  if (!(calibration.snrDb >= min)) {
    throw new AtelierError(
      'BAD_REQUEST',
      `--vae-quantize / ATELIER_VAE_QUANTIZE "int8": this checkpoint's VAE decoder loses too much in int8 (SNR ${calibration.snrDb.toFixed(1)} dB against fp32 on the calibration batch, minimum ${min} dB); use "off"`,
      { field: 'vae-quantize' },
    );
  }
  return Object.assign(await int8Convs(model.weights.vae, calibration.ranges), { calibration, calibrated });
}

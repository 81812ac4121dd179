/**
 * Calibration of the VAE decoder's int8 convolutions (`--vae-quantize int8`; the procedure, its cache and the refusal
 * below an SNR floor are src/networks/int8-calibration.ts).
 *
 * The runs: 4 latents of 32×32, one per run (the ranges are ratios, so the size does not matter) — two of white
 * Gaussian noise, two of smooth noise (8×8 noise upsampled bilinearly), each at unit variance and ÷ the scaling
 * factor: the statistics of latents the UNet produces.
 */
import { TorchGenerator } from '../sampling/rng.ts';
import type { TensorIn } from '../onnx/session.ts';
import { buildVaeDecoderGraph, quantisableDecoderConvs, type VaeSource } from './vae.ts';
import { calibratedInt8Convs, type CalibratedOptions, type CalibrationSpec } from './int8-calibration.ts';

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

/** How the decoder is calibrated (src/networks/int8-calibration.ts). */
function decoderCalibrationSpec(model: VaeSource): CalibrationSpec {
  return {
    network: 'vae_decoder',
    setting: '--vae-quantize / ATELIER_VAE_QUANTIZE',
    value: 'int8',
    field: 'vae-quantize',
    what: 'VAE decoder',
    instead: '"off"',
    modules: quantisableDecoderConvs(model.weights.vae),
    weights: model.weights.vae,
    build: (convs) => buildVaeDecoderGraph(model, convs),
    // one latent per run: the decoder decodes one image at a time
    feeds: () => {
      const z = decoderCalibrationBatch(model.config.vae.latentChannels, model.config.vae.scalingFactor);
      const [n, ...rest] = z.dims;
      const per = z.data.length / n;
      return Array.from({ length: n }, (_, i) => ({ z: { data: z.data.subarray(i * per, (i + 1) * per), dims: [1, ...rest] } }));
    },
    output: 'image',
  };
}

export interface Int8DecoderSource extends VaeSource {
  fingerprint: string;
}

/** The decoder's int8 convolutions: calibration from the cache (or calibrated now and cached), weights quantised. */
export function decoderInt8Convs(model: Int8DecoderSource, opts: Omit<CalibratedOptions, 'fingerprint'>): ReturnType<typeof calibratedInt8Convs> {
  return calibratedInt8Convs(decoderCalibrationSpec(model), { ...opts, fingerprint: model.fingerprint });
}

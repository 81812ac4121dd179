/**
 * Classifier-free guidance (Ho & Salimans 2022, arXiv:2207.12598) and guidance rescale (Lin et al. 2023,
 * arXiv:2305.08891 §3.4), as diffusers' SDXL pipeline computes them in float32.
 */
import { AtelierError } from '../contract/errors.ts';

const fr = Math.fround;

/** ε = u + g·(c − u), elementwise (float32) */
export function applyCfg(uncond: Float32Array, cond: Float32Array, scale: number): Float32Array {
  if (uncond.length !== cond.length) {
    throw new AtelierError('INTERNAL', `cfg halves differ in size: ${uncond.length} vs ${cond.length}`);
  }
  const g = fr(scale);
  const out = new Float32Array(cond.length);
  for (let i = 0; i < cond.length; i++) out[i] = uncond[i] + fr(g * fr(cond[i] - uncond[i]));
  return out;
}

/**
 * CFG on the UNet output of the doubled batch [uncond ×B, cond ×B] (diffusers' `noise_pred.chunk(2)` order).
 * Returns the guided prediction and the cond half (for `rescaleNoiseCfg`).
 */
export function applyCfgToBatch(noisePred: Float32Array, scale: number): { guided: Float32Array; cond: Float32Array } {
  if (noisePred.length % 2 !== 0) throw new AtelierError('INTERNAL', `odd CFG batch of ${noisePred.length} values`);
  const half = noisePred.length / 2;
  const cond = noisePred.subarray(half);
  return { guided: applyCfg(noisePred.subarray(0, half), cond, scale), cond };
}

/**
 * guidance_rescale φ: per sample, ε_rescaled = ε·(std(cond)/std(ε)), result = φ·ε_rescaled + (1 − φ)·ε, with the
 * unbiased std over all dims but the batch (diffusers `rescale_noise_cfg`). φ = 0 returns `guided` unchanged
 * (diffusers skips the call). `batch` = number of samples in `guided` (its length must divide by it).
 */
export function rescaleNoiseCfg(guided: Float32Array, cond: Float32Array, rescale: number, batch = 1): Float32Array {
  if (rescale === 0) return guided;
  if (guided.length !== cond.length || guided.length % batch !== 0) {
    throw new AtelierError('INTERNAL', `rescale: ${guided.length} guided values, ${cond.length} cond, batch ${batch}`);
  }
  const per = guided.length / batch;
  const phi = fr(rescale);
  const keep = fr(1 - rescale);
  const out = new Float32Array(guided.length);
  for (let b = 0; b < batch; b++) {
    const g = guided.subarray(b * per, (b + 1) * per);
    const ratio = fr(std(cond.subarray(b * per, (b + 1) * per)) / std(g));
    for (let i = 0; i < per; i++) out[b * per + i] = fr(phi * fr(g[i] * ratio)) + fr(keep * g[i]);
  }
  return out;
}

/** unbiased standard deviation, accumulated in double, rounded to float32 (torch.std on CPU float32) */
function std(x: Float32Array): number {
  let mean = 0;
  for (const v of x) mean += v;
  mean /= x.length;
  let ss = 0;
  for (const v of x) ss += (v - mean) * (v - mean);
  return fr(Math.sqrt(ss / (x.length - 1)));
}

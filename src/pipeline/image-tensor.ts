/** Conversions between 8-bit RGB images and the float tensors the networks take. */
import type { RgbImage } from '../contract/types.ts';

/** HWC uint8 → [1, 3, H, W] float in [-1, 1] (2·(p/255) − 1, as diffusers' VaeImageProcessor) */
export function imageToTensor(img: RgbImage): Float32Array {
  const { width: W, height: H, data } = img;
  const out = new Float32Array(3 * H * W);
  const plane = H * W;
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[c * plane + i] = 2 * (data[i * 3 + c] / 255) - 1;
  }
  return out;
}

/** [n, 3, H, W] float in [0, 1] → n HWC uint8 images, rounding as numpy's (x·255).round() (half to even). */
export function tensorToImages(t: Float32Array, n: number, H: number, W: number): RgbImage[] {
  const plane = H * W;
  const images: RgbImage[] = [];
  for (let k = 0; k < n; k++) {
    const data = new Uint8Array(plane * 3);
    const base = k * 3 * plane;
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) data[i * 3 + c] = roundHalfEven(Math.fround(t[base + c * plane + i] * 255));
    }
    images.push({ width: W, height: H, data });
  }
  return images;
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Cheap preview: a fixed linear map from SDXL's 4 latent channels to RGB (the community's "latent2rgb" factors),
 * at latent resolution (1/vaeScaleFactor of the output: 1/8 for SDXL), first image of the batch.
 */
const LATENT_RGB: ReadonlyArray<readonly [number, number, number]> = [
  [0.3651, 0.4232, 0.4341],
  [-0.2533, -0.0042, 0.1068],
  [0.1076, 0.1111, -0.0362],
  [-0.3165, -0.2492, -0.2188],
];
const LATENT_RGB_BIAS = [0.1084, -0.0175, -0.0011] as const;

export function latentPreview(latents: Float32Array, n: number, c: number, h: number, w: number): RgbImage {
  void n;
  const plane = h * w;
  const data = new Uint8Array(plane * 3);
  for (let i = 0; i < plane; i++) {
    for (let k = 0; k < 3; k++) {
      let v = LATENT_RGB_BIAS[k];
      for (let ch = 0; ch < Math.min(c, 4); ch++) v += latents[ch * plane + i] * LATENT_RGB[ch][k];
      const p = Math.round(((v + 1) / 2) * 255);
      data[i * 3 + k] = p < 0 ? 0 : p > 255 ? 255 : p;
    }
  }
  return { width: w, height: h, data };
}

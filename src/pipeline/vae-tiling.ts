/**
 * Tiled VAE decoding for large images: the latent is decoded in overlapping square tiles whose outputs are blended
 * with linear ramps across the overlaps, so activation memory is bounded by one tile instead of the whole image
 * (the full-size SDXL decoder holds several GB of activations at 1024²). Each tile normalises with its own
 * statistics, so the result differs slightly from an untiled decode; small images are never tiled.
 * (The same idea as diffusers' `AutoencoderKL.tiled_decode`; this blend uses both-sided linear weights.)
 */
import { AtelierError } from '../contract/errors.ts';

export interface TileOptions {
  /** tile side in latent cells (default 64 = 512 px with SDXL's scale factor 8) */
  tile: number;
  /** overlap between neighbouring tiles in latent cells (default 16 = 128 px with factor 8) */
  overlap: number;
}

export const DEFAULT_TILES: TileOptions = { tile: 64, overlap: 16 };

/**
 * Decode images larger than this many output pixels (H·W) in tiles: 1024² and above. Counted in pixels, not latent
 * cells: the decoder's activation memory is dominated by its full-resolution layers, whatever the VAE's scale factor.
 */
export const TILE_ABOVE_PIXELS = 896 * 896;

/** Start offsets of tiles of size `tile` covering `n` cells with at least `overlap` overlap. */
export function tileStarts(n: number, tile: number, overlap: number): number[] {
  if (n <= tile) return [0];
  const stride = tile - overlap;
  const starts: number[] = [];
  for (let s = 0; s + tile < n; s += stride) starts.push(s);
  starts.push(n - tile);
  return starts;
}

/** Weight of output pixel i (0 ≤ i < size) of a tile: a ramp over `ramp` pixels at each side that has a neighbour. */
function rampWeight(i: number, size: number, ramp: number, lowEdge: boolean, highEdge: boolean): number {
  let w = 1;
  if (!lowEdge) w = Math.min(w, (i + 0.5) / ramp);
  if (!highEdge) w = Math.min(w, (size - i - 0.5) / ramp);
  return w;
}

/**
 * Decode one latent z [C, h, w] (batch 1) into [3, f·h, f·w] by tiles, f = the VAE's scale factor
 * (`vaeScaleFactor`). `decode(tile, th, tw)` decodes a [1, C, th, tw] latent into [1, 3, f·th, f·tw].
 */
export async function decodeTiled(
  z: Float32Array,
  c: number,
  h: number,
  w: number,
  f: number,
  decode: (tile: Float32Array, th: number, tw: number) => Promise<Float32Array>,
  opts: TileOptions = DEFAULT_TILES,
): Promise<Float32Array> {
  const H = h * f;
  const W = w * f;
  const out = new Float32Array(3 * H * W);
  const weight = new Float32Array(H * W);
  const ys = tileStarts(h, opts.tile, opts.overlap);
  const xs = tileStarts(w, opts.tile, opts.overlap);
  const th = Math.min(h, opts.tile);
  const tw = Math.min(w, opts.tile);
  const ramp = opts.overlap * f;
  const tile = new Float32Array(c * th * tw);
  for (const y0 of ys) {
    for (const x0 of xs) {
      for (let ch = 0; ch < c; ch++) {
        for (let y = 0; y < th; y++) {
          const src = ch * h * w + (y0 + y) * w + x0;
          tile.set(z.subarray(src, src + tw), ch * th * tw + y * tw); // [C, th, tw]
        }
      }
      const img = await decode(tile, th, tw); // [1, 3, th·f, tw·f]
      const TH = th * f;
      const TW = tw * f;
      if (img.length !== 3 * TH * TW) throw new AtelierError('INTERNAL', `VAE tile ${th}×${tw} decoded to ${img.length} values, expected 3×${TH}×${TW} (scale factor ${f})`);
      for (let y = 0; y < TH; y++) {
        const wy = rampWeight(y, TH, ramp, y0 === 0, y0 + th === h);
        for (let x = 0; x < TW; x++) {
          const wgt = wy * rampWeight(x, TW, ramp, x0 === 0, x0 + tw === w);
          const o = (y0 * f + y) * W + x0 * f + x;
          weight[o] += wgt;
          for (let ch = 0; ch < 3; ch++) out[ch * H * W + o] += wgt * img[ch * TH * TW + y * TW + x];
        }
      }
    }
  }
  for (let i = 0; i < H * W; i++) for (let ch = 0; ch < 3; ch++) out[ch * H * W + i] /= weight[i];
  return out;
}

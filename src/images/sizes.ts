/**
 * Output size planning for `image_size`, `preserve_aspect_ratio` and `crop_output`, and RGB resizing (sharp, lanczos3).
 *
 * Semantics (W×H = the requested size, a preset or custom; M = `multiple`, 8 px per SDXL latent cell):
 * - Snapping: a side is rounded to the nearest multiple of M (halves round up), never below 64.
 * - Plain (preserve_aspect_ratio false, or no input image): generate at snap(W)×snap(H); the final image is that.
 *   An input image is resized to the generate size with fit 'fill' (stretched), as diffusers' VaeImageProcessor does.
 *   crop_output without preserve_aspect_ratio is ignored (there is nothing to crop).
 * - preserve_aspect_ratio: generate at the input's aspect ratio with about W·H pixels (w = √(W·H·a), h = w / a,
 *   each snapped; a side that would fall below 64 is held at 64). The final image is the generated one.
 * - preserve_aspect_ratio + crop_output: the final image is exactly W×H (not snapped: cropping can hit any size).
 *   Generation runs at the input's aspect ratio, just covering W×H (the smaller scale that makes both sides ≥ the
 *   request, sides rounded up to M). The result is centre-cropped to W×H (`crop`); when `maxPixels` forced the
 *   generation smaller than the cover, `crop` is the centred region with W:H aspect, scaled afterwards to W×H.
 * Every generate size stays within `maxPixels` and MAX_SIDE per side (scaled/snapped down when it would not;
 * with extreme input aspect ratios the aspect is then only approximately kept).
 */
import sharp from 'sharp';
import { AtelierError } from '../contract/errors.ts';
import type { RgbImage } from '../contract/types.ts';
import { assertRgb } from './codec.ts';

import { IMAGE_SIZE_PRESETS, MAX_SIDE, MIN_SIDE, type ImageSize, type Size } from '../contract/tables.ts';

export { IMAGE_SIZE_PRESETS, MAX_SIDE, MIN_SIDE, type ImageSize, type ImageSizePreset, type Size } from '../contract/tables.ts';


export interface CropRect {
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface OutputPlan {
  /** size the pipeline generates at (multiples of `multiple`); an input image is resized to this */
  generateWidth: number;
  generateHeight: number;
  /** size of the delivered image */
  finalWidth: number;
  finalHeight: number;
  /** region of the generated image kept, in generated pixels; resized to final size if it differs */
  crop?: CropRect;
}

export interface ResolveOutputSizeOptions {
  imageSize: ImageSize;
  inputSize?: Size;
  preserveAspectRatio: boolean;
  cropOutput: boolean;
  multiple?: number;
  maxPixels: number;
}

/** The requested size of a preset or a custom `{width, height}`; throws INVALID_INPUT (field image_size). */
export function requestedSize(imageSize: ImageSize): Size {
  if (typeof imageSize === 'string') {
    const preset = (IMAGE_SIZE_PRESETS as Record<string, Size>)[imageSize];
    if (!preset || !Object.hasOwn(IMAGE_SIZE_PRESETS, imageSize)) {
      const names = Object.keys(IMAGE_SIZE_PRESETS).join(', ');
      throw new AtelierError('INVALID_INPUT', `image_size ${JSON.stringify(imageSize)} is not one of ${names}`, {
        field: 'image_size',
      });
    }
    return { ...preset };
  }
  for (const side of ['width', 'height'] as const) {
    const v = imageSize[side];
    if (!Number.isInteger(v) || v < MIN_SIDE || v > MAX_SIDE) {
      throw new AtelierError('INVALID_INPUT', `image_size.${side} must be an integer ${MIN_SIDE}–${MAX_SIDE}, got ${v}`, {
        field: `image_size.${side}`,
      });
    }
  }
  return { width: imageSize.width, height: imageSize.height };
}

/** Round to the nearest multiple (halves up), at least MIN_SIDE. */
export function snapToMultiple(v: number, multiple = 8): number {
  return Math.max(MIN_SIDE, Math.round(v / multiple) * multiple);
}

export function resolveOutputSize(opts: ResolveOutputSizeOptions): OutputPlan {
  const multiple = opts.multiple ?? 8;
  const { maxPixels } = opts;
  if (!(maxPixels >= MIN_SIDE * MIN_SIDE)) {
    throw new AtelierError('INTERNAL', `maxPixels must be at least ${MIN_SIDE * MIN_SIDE}, got ${maxPixels}`);
  }
  const req = requestedSize(opts.imageSize);
  if (req.width * req.height > maxPixels) {
    throw new AtelierError(
      'INVALID_INPUT',
      `image_size ${req.width}×${req.height} = ${req.width * req.height} pixels is over this server's max_pixels ${maxPixels}`,
      { field: 'image_size' },
    );
  }
  const input = opts.inputSize;
  if (!opts.preserveAspectRatio || !input) {
    const gen = fitWithin(snapToMultiple(req.width, multiple), snapToMultiple(req.height, multiple), maxPixels, multiple);
    return { generateWidth: gen.width, generateHeight: gen.height, finalWidth: gen.width, finalHeight: gen.height };
  }
  if (!(input.width > 0 && input.height > 0)) {
    throw new AtelierError('INTERNAL', `input size must be positive, got ${input.width}×${input.height}`);
  }
  const aspect = input.width / input.height;

  if (!opts.cropOutput) {
    // About W·H pixels at the input's aspect ratio.
    const pixels = req.width * req.height;
    let w = Math.sqrt(pixels * aspect);
    let h = w / aspect;
    if (w < MIN_SIDE) [w, h] = [MIN_SIDE, pixels / MIN_SIDE];
    if (h < MIN_SIDE) [w, h] = [pixels / MIN_SIDE, MIN_SIDE];
    const gen = fitWithin(snapToMultiple(w, multiple), snapToMultiple(h, multiple), maxPixels, multiple);
    return { generateWidth: gen.width, generateHeight: gen.height, finalWidth: gen.width, finalHeight: gen.height };
  }

  // Cover W×H at the input's aspect ratio, then centre-crop to exactly W×H.
  const scale = Math.max(req.width / input.width, req.height / input.height);
  const cover = {
    width: Math.max(MIN_SIDE, Math.ceil((input.width * scale - 1e-9) / multiple) * multiple),
    height: Math.max(MIN_SIDE, Math.ceil((input.height * scale - 1e-9) / multiple) * multiple),
  };
  const gen = fitWithin(cover.width, cover.height, maxPixels, multiple);
  return {
    generateWidth: gen.width,
    generateHeight: gen.height,
    finalWidth: req.width,
    finalHeight: req.height,
    crop: centredRegion(gen, req),
  };
}

/**
 * Bound a snapped size: each side ≤ MAX_SIDE, then scale down (snapping down) until w·h ≤ maxPixels.
 * Unchanged when it already fits.
 */
function fitWithin(w0: number, h0: number, maxPixels: number, multiple: number): Size {
  const maxSide = Math.floor(MAX_SIDE / multiple) * multiple;
  const w = Math.min(w0, maxSide);
  const h = Math.min(h0, maxSide);
  if (w * h <= maxPixels) return { width: w, height: h };
  const s = Math.sqrt(maxPixels / (w * h));
  const down = (v: number): number => Math.max(MIN_SIDE, Math.floor((v * s) / multiple) * multiple);
  let width = down(w);
  let height = down(h);
  // A side clamped at MIN_SIDE can leave the product over: shorten the other side.
  while (width * height > maxPixels && (width > MIN_SIDE || height > MIN_SIDE)) {
    if (width >= height) width -= multiple;
    else height -= multiple;
  }
  return { width, height };
}

/**
 * The centred region of `outer` kept for `target`: exactly target-sized when `outer` covers it, otherwise the
 * largest centred region with the target's aspect ratio (scaled to target size afterwards).
 */
function centredRegion(outer: Size, target: Size): CropRect {
  let width = target.width;
  let height = target.height;
  if (outer.width < target.width || outer.height < target.height) {
    width = outer.width;
    height = outer.height;
    if (outer.width * target.height > target.width * outer.height) {
      width = Math.min(outer.width, Math.round((outer.height * target.width) / target.height));
    } else {
      height = Math.min(outer.height, Math.round((outer.width * target.height) / target.width));
    }
  }
  return {
    left: Math.floor((outer.width - width) / 2),
    top: Math.floor((outer.height - height) / 2),
    width,
    height,
  };
}

/** Resize with lanczos3: 'fill' stretches to exactly width×height, 'cover' scales to cover then centre-crops. */
export async function resizeRgb(img: RgbImage, width: number, height: number, fit: 'fill' | 'cover'): Promise<RgbImage> {
  assertRgb(img);
  if (img.width === width && img.height === height) return { width, height, data: img.data.slice() };
  const { data, info } = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize({ width, height, fit, position: 'centre', kernel: 'lanczos3' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return checked(data, info.width, info.height, info.channels);
}

/** Apply a plan's crop to a generated image: extract the region, then resize it to the final size if needed. */
export async function applyOutputPlan(img: RgbImage, plan: OutputPlan): Promise<RgbImage> {
  assertRgb(img);
  if (!plan.crop) {
    if (img.width === plan.finalWidth && img.height === plan.finalHeight) return img;
    return resizeRgb(img, plan.finalWidth, plan.finalHeight, 'fill');
  }
  const c = plan.crop;
  let p = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).extract(c);
  if (c.width !== plan.finalWidth || c.height !== plan.finalHeight) {
    p = p.resize({ width: plan.finalWidth, height: plan.finalHeight, fit: 'fill', kernel: 'lanczos3' });
  }
  const { data, info } = await p.raw().toBuffer({ resolveWithObject: true });
  return checked(data, info.width, info.height, info.channels);
}

function checked(data: Buffer, width: number, height: number, channels: number): RgbImage {
  if (channels !== 3) throw new AtelierError('INTERNAL', `resize produced ${channels} channels, expected 3`);
  return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

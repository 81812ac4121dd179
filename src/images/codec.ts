/**
 * Image decoding and encoding (sharp / libvips).
 * The type is sniffed from magic bytes only; file names and Content-Type headers are not trusted.
 * Decoding reads the header first and refuses images over `maxPixels` before any pixel is decompressed.
 * Magic numbers: JPEG (ITU T.81 SOI), PNG (ISO 15948 signature), GIF (GIF89a spec), WebP (RIFF container spec),
 * AVIF/HEIF (ISO/IEC 14496-12 `ftyp` box, brands from ISO/IEC 23008-12 and the AV1 Image File Format spec).
 */
import sharp, { type Metadata } from 'sharp';
import { AtelierError } from '../contract/errors.ts';
import type { RgbImage } from '../contract/types.ts';

export type ImageType = 'jpeg' | 'png' | 'webp' | 'gif' | 'avif' | 'heif';

export const CONTENT_TYPES: Readonly<Record<ImageType, string>> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  avif: 'image/avif',
  heif: 'image/heif',
};

const AVIF_BRANDS = new Set(['avif', 'avis']);
const HEIF_BRANDS = new Set(['heic', 'heix', 'heim', 'heis', 'hevc', 'hevx', 'mif1', 'msf1', 'mif2']);
const ACCEPTED = 'JPEG, PNG, WebP, GIF or AVIF';

/** Identify the image type from its first bytes; throws UNSUPPORTED_MEDIA_TYPE (415) naming `field`. */
export function sniffImageType(bytes: Uint8Array, field = 'image_url'): ImageType {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'png';
  if (b.length >= 6 && (b.toString('latin1', 0, 6) === 'GIF87a' || b.toString('latin1', 0, 6) === 'GIF89a')) return 'gif';
  if (b.length >= 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') return 'webp';
  const ftyp = sniffFtyp(b);
  if (ftyp) return ftyp;
  const head = b.subarray(0, 8).toString('hex').replace(/(..)(?!$)/g, '$1 ');
  throw new AtelierError(
    'UNSUPPORTED_MEDIA_TYPE',
    `${field}: not a ${ACCEPTED} image (first bytes: ${head || 'none'}, ${b.length} bytes in all)`,
    { field },
  );
}

/** ISO base media file: [size:u32be]['ftyp'][major brand][minor version][compatible brands…]. */
function sniffFtyp(b: Buffer): ImageType | undefined {
  if (b.length < 16 || b.toString('latin1', 4, 8) !== 'ftyp') return undefined;
  const boxSize = b.readUInt32BE(0);
  const end = Math.min(b.length, boxSize >= 16 ? boxSize : 16);
  const brands = [b.toString('latin1', 8, 12)];
  for (let o = 16; o + 4 <= end; o += 4) brands.push(b.toString('latin1', o, o + 4));
  if (brands.some((x) => AVIF_BRANDS.has(x))) return 'avif';
  if (brands.some((x) => HEIF_BRANDS.has(x))) return 'heif';
  return undefined;
}

export interface DecodeOptions {
  /** refuse images whose width × height exceeds this (decompression bombs) */
  maxPixels: number;
  field: string;
}

/**
 * Decode to 8-bit sRGB, 3 channels: first frame only (GIF, animated WebP), EXIF orientation applied,
 * transparency flattened onto white. Throws UNSUPPORTED_MEDIA_TYPE, PAYLOAD_TOO_LARGE or IMAGE_DECODE_FAILED.
 */
export async function decodeImage(bytes: Uint8Array, opts: DecodeOptions): Promise<RgbImage> {
  const { field, maxPixels } = opts;
  const type = sniffImageType(bytes, field);
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  // 1. Header only: dimensions before any decompression.
  let meta: Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: false, pages: 1 }).metadata();
  } catch (cause) {
    throw decodeFailed(field, type, cause);
  }
  const width = meta.width;
  const height = meta.pageHeight ?? meta.height;
  if (!(width > 0 && height > 0)) throw decodeFailed(field, type, new Error('the header holds no dimensions'));
  if (width * height > maxPixels) {
    throw new AtelierError(
      'PAYLOAD_TOO_LARGE',
      `${field}: the image is ${width}×${height} = ${width * height} pixels, over the limit of ${maxPixels}`,
      { field },
    );
  }

  // 2. Decode the first frame, bounded by the same limit inside libvips.
  try {
    const { data, info } = await sharp(input, {
      limitInputPixels: Math.max(1, Math.floor(maxPixels)),
      failOn: 'error',
      pages: 1,
      page: 0,
      autoOrient: true,
    })
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoder produced ${info.channels} channels, expected 3`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (cause) {
    throw decodeFailed(field, type, cause);
  }
}

export type OutputFormat = 'jpeg' | 'png';

/** Encode an RGB image: PNG (lossless) or JPEG (quality 1–100, default 90, 4:2:0). */
export async function encodeImage(
  img: RgbImage,
  format: OutputFormat,
  quality = 90,
): Promise<{ bytes: Buffer; contentType: string }> {
  assertRgb(img);
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new AtelierError('INVALID_INPUT', `JPEG quality must be an integer 1–100, got ${quality}`);
  }
  const pipeline = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  if (format === 'png') {
    return { bytes: await pipeline.png({ compressionLevel: 6, adaptiveFiltering: true }).toBuffer(), contentType: 'image/png' };
  }
  if (format === 'jpeg') {
    return { bytes: await pipeline.jpeg({ quality }).toBuffer(), contentType: 'image/jpeg' };
  }
  throw new AtelierError('INVALID_INPUT', `format must be "jpeg" or "png", got ${JSON.stringify(format)}`, {
    field: 'format',
  });
}

/** Invariant check for RgbImage values produced inside the server. */
export function assertRgb(img: RgbImage): void {
  const ok =
    Number.isInteger(img.width) &&
    Number.isInteger(img.height) &&
    img.width > 0 &&
    img.height > 0 &&
    img.data.length === img.width * img.height * 3;
  if (!ok) {
    throw new AtelierError(
      'INTERNAL',
      `malformed RgbImage: ${img.width}×${img.height} with ${img.data.length} bytes (expected width·height·3)`,
    );
  }
}

function decodeFailed(field: string, type: ImageType, cause: unknown): AtelierError {
  const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
  if (type === 'heif') {
    // libheif in the prebuilt sharp decodes AV1 (AVIF) only; HEVC (HEIC) needs a patent-encumbered decoder.
    return new AtelierError(
      'UNSUPPORTED_MEDIA_TYPE',
      `${field}: HEIF/HEIC images cannot be decoded by this server (${reason}); send ${ACCEPTED}`,
      { field, cause },
    );
  }
  return new AtelierError('IMAGE_DECODE_FAILED', `${field}: the ${type.toUpperCase()} data could not be decoded (${reason})`, {
    field,
    cause,
  });
}

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { AtelierError, type ErrorCode } from '../contract/errors.ts';
import type { RgbImage } from '../contract/types.ts';
import { decodeImage, encodeImage, sniffImageType } from './codec.ts';

const FIELD = 'image_url';
const LIMIT = { maxPixels: 1_000_000, field: FIELD };

/** Solid-colour image in any format sharp writes. */
async function solid(format: 'jpeg' | 'png' | 'webp' | 'gif' | 'avif', w = 16, h = 8): Promise<Buffer> {
  return sharp({ create: { width: w, height: h, channels: 3, background: { r: 200, g: 40, b: 90 } } })
    .toFormat(format)
    .toBuffer();
}

function pixel(img: RgbImage, x: number, y: number): number[] {
  const i = (y * img.width + x) * 3;
  return [img.data[i]!, img.data[i + 1]!, img.data[i + 2]!];
}

function near(actual: number[], expected: number[], tol: number, what: string): void {
  assert.ok(
    actual.every((v, i) => Math.abs(v - expected[i]!) <= tol),
    `${what}: got [${actual}], expected [${expected}] ± ${tol}`,
  );
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, fragment?: string): Promise<AtelierError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof AtelierError, `expected ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.field, FIELD);
  if (fragment) assert.ok(caught.message.includes(fragment), caught.message);
  return caught;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}

/** A well-formed PNG whose IHDR claims `w`×`h` RGB but carries almost no data. */
function bombPng(w: number, h: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(1024))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

function ftyp(major: string, compatible: string[]): Buffer {
  const size = 16 + 4 * compatible.length;
  const b = Buffer.alloc(size + 8);
  b.writeUInt32BE(size, 0);
  b.write('ftyp', 4, 'latin1');
  b.write(major, 8, 'latin1');
  compatible.forEach((c, i) => b.write(c, 16 + 4 * i, 'latin1'));
  b.write('meta', size + 4, 'latin1');
  return b;
}

const AVIF_WRITE = sharp.format.heif.output.buffer;

describe('sniffImageType', () => {
  for (const f of ['jpeg', 'png', 'webp', 'gif'] as const) {
    it(`recognises ${f} written by sharp`, async () => assert.equal(sniffImageType(await solid(f)), f));
  }

  it('recognises avif written by sharp', { skip: AVIF_WRITE ? false : 'this sharp build cannot encode AVIF' }, async () => {
    assert.equal(sniffImageType(await solid('avif')), 'avif');
  });

  it('reads ftyp brands from hand-made headers', () => {
    assert.equal(sniffImageType(ftyp('avif', ['mif1', 'miaf'])), 'avif');
    assert.equal(sniffImageType(ftyp('avis', [])), 'avif');
    assert.equal(sniffImageType(ftyp('mif1', ['miaf', 'avif'])), 'avif', 'AVIF named among compatible brands');
    assert.equal(sniffImageType(ftyp('heic', ['mif1'])), 'heif');
    assert.equal(sniffImageType(ftyp('mif1', ['heic'])), 'heif');
    assert.throws(() => sniffImageType(ftyp('isom', ['mp41'])), { code: 'UNSUPPORTED_MEDIA_TYPE' }, 'MP4 video');
  });

  it('refuses other content with 415, naming the field and the first bytes', () => {
    const cases: Array<[Buffer, string]> = [
      [Buffer.alloc(0), 'none'],
      [Buffer.from('hello world'), '68 65 6c 6c'],
      [Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'), '3c 73 76 67'],
      [Buffer.from('II*\0\x08\0\0\0', 'latin1'), '49 49 2a 00'], // TIFF
      [Buffer.from('BM\0\0\0\0', 'latin1'), '42 4d'], // BMP
      [Buffer.from('%PDF-1.7'), '25 50 44 46'],
    ];
    for (const [bytes, head] of cases) {
      assert.throws(
        () => sniffImageType(bytes, 'mask_url'),
        (e: unknown) =>
          e instanceof AtelierError &&
          e.code === 'UNSUPPORTED_MEDIA_TYPE' &&
          e.status === 415 &&
          e.field === 'mask_url' &&
          e.message.includes(head),
      );
    }
  });
});

describe('decodeImage', () => {
  for (const f of ['png', 'webp', 'gif', 'jpeg'] as const) {
    it(`decodes ${f} to 3-channel sRGB`, async () => {
      const img = await decodeImage(await solid(f), LIMIT);
      assert.equal(img.width, 16);
      assert.equal(img.height, 8);
      assert.equal(img.data.length, 16 * 8 * 3);
      near(pixel(img, 5, 5), [200, 40, 90], f === 'png' ? 0 : 8, f); // WebP, JPEG: sharp writes them lossy
    });
  }

  it('decodes avif', { skip: AVIF_WRITE ? false : 'this sharp build cannot encode AVIF' }, async () => {
    const img = await decodeImage(await solid('avif'), LIMIT);
    assert.deepEqual([img.width, img.height], [16, 8]);
    near(pixel(img, 3, 3), [200, 40, 90], 12, 'avif');
  });

  it('flattens transparency onto white', async () => {
    const rgba = await sharp({ create: { width: 4, height: 4, channels: 4, background: { r: 10, g: 200, b: 30, alpha: 0.5 } } })
      .png()
      .toBuffer();
    const clear = await sharp({ create: { width: 4, height: 4, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
      .png()
      .toBuffer();
    near(pixel(await decodeImage(rgba, LIMIT), 1, 1), [133, 228, 143], 1, 'half alpha'); // (c + 255) / 2
    assert.deepEqual(pixel(await decodeImage(clear, LIMIT), 0, 0), [255, 255, 255]);
  });

  it('expands greyscale and reduces 16-bit to 8-bit RGB', async () => {
    const grey = await sharp({ create: { width: 3, height: 2, channels: 3, background: { r: 77, g: 77, b: 77 } } })
      .toColourspace('b-w')
      .png()
      .toBuffer();
    assert.equal((await sharp(grey).metadata()).channels, 1);
    const g = await decodeImage(grey, LIMIT);
    assert.equal(g.data.length, 3 * 2 * 3);
    assert.deepEqual(pixel(g, 2, 1), [77, 77, 77]);
    const deep = await sharp({ create: { width: 3, height: 2, channels: 3, background: { r: 250, g: 5, b: 128 } } })
      .toColourspace('rgb16')
      .png()
      .toBuffer();
    assert.equal((await sharp(deep).metadata()).depth, 'ushort');
    near(pixel(await decodeImage(deep, LIMIT), 0, 0), [250, 5, 128], 1, '16-bit');
  });

  it('applies EXIF orientation', async () => {
    // 32×16: left half red, right half blue. Orientation 6 = displayed rotated 90° clockwise → 16×32, red on top.
    const raw = Buffer.alloc(32 * 16 * 3);
    for (let y = 0; y < 16; y++) for (let x = 0; x < 32; x++) raw.set(x < 16 ? [255, 0, 0] : [0, 0, 255], (y * 32 + x) * 3);
    const jpeg = await sharp(raw, { raw: { width: 32, height: 16, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    assert.equal((await sharp(jpeg).metadata()).orientation, 6);
    const img = await decodeImage(jpeg, LIMIT);
    assert.deepEqual([img.width, img.height], [16, 32]);
    near(pixel(img, 8, 4), [255, 0, 0], 10, 'top');
    near(pixel(img, 8, 28), [0, 0, 255], 10, 'bottom');
  });

  for (const f of ['gif', 'webp'] as const) {
    it(`takes the first frame of an animated ${f}`, async () => {
      const frame = (r: number, b: number): Promise<Buffer> =>
        sharp({ create: { width: 8, height: 6, channels: 3, background: { r, g: 0, b } } }).png().toBuffer();
      const anim = await sharp([await frame(255, 0), await frame(0, 255)], { join: { animated: true } })
        .toFormat(f, f === 'webp' ? { lossless: true } : {})
        .toBuffer();
      assert.equal((await sharp(anim).metadata()).pages, 2);
      const img = await decodeImage(anim, LIMIT);
      assert.deepEqual([img.width, img.height], [8, 6]);
      near(pixel(img, 4, 3), [255, 0, 0], 8, 'frame 0');
    });
  }

  it('refuses a PNG header claiming 100000×100000 before decoding (413)', async () => {
    const t0 = performance.now();
    const e = await rejectsWith(decodeImage(bombPng(100_000, 100_000), LIMIT), 'PAYLOAD_TOO_LARGE', '100000×100000');
    assert.equal(e.status, 413);
    assert.ok(e.message.includes('1000000'), e.message);
    assert.ok(performance.now() - t0 < 1000, 'no 30 GB decode was attempted');
  });

  it('accepts exactly maxPixels and refuses one pixel more', async () => {
    const png = await solid('png', 16, 8);
    assert.equal((await decodeImage(png, { maxPixels: 128, field: FIELD })).width, 16);
    await rejectsWith(decodeImage(png, { maxPixels: 127, field: FIELD }), 'PAYLOAD_TOO_LARGE', '16×8');
  });

  it('turns corrupt data into IMAGE_DECODE_FAILED (422), never a crash', async () => {
    const jpeg = await solid('jpeg', 64, 64);
    const png = await solid('png', 64, 64);
    const garbage = Buffer.concat([png.subarray(0, 8), Buffer.from('definitely not chunks')]);
    const badCrc = Buffer.from(png);
    badCrc[30] ^= 0xff; // inside IHDR → CRC mismatch
    for (const bytes of [jpeg.subarray(0, jpeg.length >> 1), png.subarray(0, png.length - 20), garbage, badCrc, Buffer.from([0xff, 0xd8, 0xff])]) {
      const e = await rejectsWith(decodeImage(bytes, LIMIT), 'IMAGE_DECODE_FAILED');
      assert.equal(e.status, 422);
    }
    const gif = await solid('gif');
    await rejectsWith(decodeImage(gif.subarray(0, 20), LIMIT), 'IMAGE_DECODE_FAILED', 'GIF');
  });

  it('refuses an undecodable HEIF/HEIC with 415, and unknown bytes with 415', async () => {
    await rejectsWith(decodeImage(ftyp('heic', ['mif1']), LIMIT), 'UNSUPPORTED_MEDIA_TYPE', 'HEIF');
    await rejectsWith(decodeImage(Buffer.from('<svg/>'), LIMIT), 'UNSUPPORTED_MEDIA_TYPE');
  });
});

describe('encodeImage', () => {
  const img: RgbImage = { width: 5, height: 3, data: new Uint8Array(5 * 3 * 3).map((_, i) => (i * 37) % 256) };

  it('PNG is lossless', async () => {
    const { bytes, contentType } = await encodeImage(img, 'png');
    assert.equal(contentType, 'image/png');
    assert.equal(sniffImageType(bytes), 'png');
    const back = await decodeImage(bytes, LIMIT);
    assert.deepEqual(back, img);
  });

  it('JPEG defaults to quality 90 and is close to the input', async () => {
    const smooth: RgbImage = { width: 32, height: 32, data: new Uint8Array(32 * 32 * 3) };
    for (let i = 0; i < 32 * 32; i++) smooth.data.set([(i % 32) * 8, Math.floor(i / 32) * 8, 128], i * 3);
    const q90 = await encodeImage(smooth, 'jpeg');
    assert.equal(q90.contentType, 'image/jpeg');
    assert.equal(sniffImageType(q90.bytes), 'jpeg');
    assert.deepEqual(q90.bytes, (await encodeImage(smooth, 'jpeg', 90)).bytes, 'default = 90');
    const q20 = await encodeImage(smooth, 'jpeg', 20);
    assert.ok(q20.bytes.length < q90.bytes.length, `q20 ${q20.bytes.length} < q90 ${q90.bytes.length}`);
    const back = await decodeImage(q90.bytes, LIMIT);
    let err = 0;
    for (let i = 0; i < back.data.length; i++) err += Math.abs(back.data[i]! - smooth.data[i]!);
    assert.ok(err / back.data.length < 3, `mean abs error ${err / back.data.length}`);
  });

  it('asserts the RgbImage invariant and the quality range', async () => {
    await assert.rejects(encodeImage({ width: 2, height: 2, data: new Uint8Array(11) }, 'png'), { code: 'INTERNAL' });
    await assert.rejects(encodeImage(img, 'jpeg', 0), { code: 'INVALID_INPUT' });
    await assert.rejects(encodeImage(img, 'gif' as 'png'), { code: 'INVALID_INPUT' });
  });
});

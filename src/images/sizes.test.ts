import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { RgbImage } from '../contract/types.ts';
import {
  IMAGE_SIZE_PRESETS,
  applyOutputPlan,
  requestedSize,
  resizeRgb,
  resolveOutputSize,
  snapToMultiple,
  type ImageSize,
  type OutputPlan,
  type ResolveOutputSizeOptions,
} from './sizes.ts';

const BIG = 14142 * 14142;
const plan = (o: Partial<ResolveOutputSizeOptions> & { imageSize: ImageSize }): OutputPlan =>
  resolveOutputSize({ preserveAspectRatio: false, cropOutput: false, maxPixels: BIG, ...o });
const sizes = (p: OutputPlan): number[] => [p.generateWidth, p.generateHeight, p.finalWidth, p.finalHeight];

describe('presets and snapping', () => {
  it('has the wire presets (width × height)', () => {
    assert.deepEqual(IMAGE_SIZE_PRESETS, {
      square_hd: { width: 1024, height: 1024 },
      square: { width: 512, height: 512 },
      portrait_4_3: { width: 768, height: 1024 },
      portrait_16_9: { width: 576, height: 1024 },
      landscape_4_3: { width: 1024, height: 768 },
      landscape_16_9: { width: 1024, height: 576 },
    });
    for (const name of Object.keys(IMAGE_SIZE_PRESETS) as Array<keyof typeof IMAGE_SIZE_PRESETS>) {
      const p = plan({ imageSize: name });
      assert.deepEqual(sizes(p), [IMAGE_SIZE_PRESETS[name].width, IMAGE_SIZE_PRESETS[name].height, IMAGE_SIZE_PRESETS[name].width, IMAGE_SIZE_PRESETS[name].height]);
      assert.equal(p.crop, undefined);
    }
  });

  it('snaps to the nearest multiple, halves up, at least 64', () => {
    assert.deepEqual([1000, 700, 1020, 1019, 65, 99, 10, 68, 67.9].map((v) => snapToMultiple(v)), [1000, 704, 1024, 1016, 64, 96, 64, 72, 64]);
    assert.equal(snapToMultiple(100, 64), 128);
    assert.deepEqual(sizes(plan({ imageSize: { width: 1000, height: 700 } })), [1000, 704, 1000, 704]);
    assert.deepEqual(sizes(plan({ imageSize: { width: 65, height: 99 } })), [64, 96, 64, 96]);
  });

  it('validates presets and custom sides', () => {
    assert.throws(() => requestedSize('huge' as ImageSize), { code: 'INVALID_INPUT', field: 'image_size', message: /"huge" is not one of square_hd/ });
    assert.throws(() => requestedSize('toString' as ImageSize), { code: 'INVALID_INPUT' });
    assert.throws(() => requestedSize({ width: 63, height: 512 }), { code: 'INVALID_INPUT', field: 'image_size.width', message: /64–14142, got 63/ });
    assert.throws(() => requestedSize({ width: 512, height: 14143 }), { field: 'image_size.height' });
    assert.throws(() => requestedSize({ width: 512.5, height: 512 }), { field: 'image_size.width' });
    assert.throws(() => plan({ imageSize: 'square_hd', maxPixels: 1_000_000 }), { code: 'INVALID_INPUT', message: /1048576 pixels is over this server's max_pixels 1000000/ });
  });

  it('keeps the snapped size within maxPixels', () => {
    // 1020² fits, but snapping up to 1024² would not: scaled and snapped down instead.
    assert.deepEqual(sizes(plan({ imageSize: { width: 1020, height: 1020 }, maxPixels: 1020 * 1020 })), [1016, 1016, 1016, 1016]);
  });
});

describe('preserve_aspect_ratio', () => {
  it('keeps the input aspect at about the requested pixel count', () => {
    // 3:2 at 1024²: w = √(1048576·1.5) = 1254.1 → 1256, h = 836.1 → 840
    assert.deepEqual(sizes(plan({ imageSize: 'square_hd', inputSize: { width: 1500, height: 1000 }, preserveAspectRatio: true })), [1256, 840, 1256, 840]);
    // 9:16 at 1024²: 768 × 1365.3 → 768 × 1368
    assert.deepEqual(sizes(plan({ imageSize: 'square_hd', inputSize: { width: 1080, height: 1920 }, preserveAspectRatio: true })), [768, 1368, 768, 1368]);
    // square input at the 16:9 preset's pixel count: √589824 = 768
    assert.deepEqual(sizes(plan({ imageSize: 'landscape_16_9', inputSize: { width: 300, height: 300 }, preserveAspectRatio: true })), [768, 768, 768, 768]);
  });

  it('holds a very thin side at 64 and respects maxPixels', () => {
    // 1000:1 at 512²: ideal h = 16 → held at 64, w = 262144 / 64 = 4096
    assert.deepEqual(sizes(plan({ imageSize: 'square', inputSize: { width: 10000, height: 10 }, preserveAspectRatio: true })), [4096, 64, 4096, 64]);
    const p = plan({ imageSize: 'square_hd', inputSize: { width: 1500, height: 1000 }, preserveAspectRatio: true, maxPixels: 1024 * 1024 });
    assert.deepEqual(sizes(p), [1248, 832, 1248, 832]); // 1256×840 = 1055040 > 1048576
  });

  it('without an input image it is the plain size', () => {
    assert.deepEqual(sizes(plan({ imageSize: 'portrait_4_3', preserveAspectRatio: true, cropOutput: true })), [768, 1024, 768, 1024]);
  });

  it('crop_output alone is ignored', () => {
    const p = plan({ imageSize: 'square', inputSize: { width: 1500, height: 1000 }, cropOutput: true });
    assert.deepEqual(sizes(p), [512, 512, 512, 512]);
    assert.equal(p.crop, undefined);
  });
});

describe('preserve_aspect_ratio + crop_output', () => {
  const crop = (imageSize: ImageSize, inputSize: { width: number; height: number }, maxPixels = BIG): OutputPlan =>
    plan({ imageSize, inputSize, preserveAspectRatio: true, cropOutput: true, maxPixels });

  it('generates to cover the request at the input aspect, then centre-crops to exactly the request', () => {
    const a = crop('square_hd', { width: 1500, height: 1000 }); // cover scale 1.024 → 1536×1024
    assert.deepEqual(sizes(a), [1536, 1024, 1024, 1024]);
    assert.deepEqual(a.crop, { left: 256, top: 0, width: 1024, height: 1024 });
    const b = crop('landscape_4_3', { width: 1000, height: 1500 }); // → 1024×1536, keep the middle 1024×768
    assert.deepEqual(sizes(b), [1024, 1536, 1024, 768]);
    assert.deepEqual(b.crop, { left: 0, top: 384, width: 1024, height: 768 });
    // custom 1000×700 from 16:9: scale 700/1080 → 1244.4×700 → rounded up 1248×704; final exactly 1000×700
    const c = crop({ width: 1000, height: 700 }, { width: 1920, height: 1080 });
    assert.deepEqual(sizes(c), [1248, 704, 1000, 700]);
    assert.deepEqual(c.crop, { left: 124, top: 2, width: 1000, height: 700 });
  });

  it('when maxPixels caps the cover, crops the centred region and scales it to the request', () => {
    const p = crop('square_hd', { width: 1500, height: 1000 }, 1024 * 1024);
    assert.deepEqual(sizes(p), [1248, 832, 1024, 1024]); // 1536×1024 scaled by √(1048576/1572864), snapped down
    assert.ok(p.generateWidth * p.generateHeight <= 1024 * 1024);
    assert.deepEqual(p.crop, { left: 208, top: 0, width: 832, height: 832 });
  });
});

function gradient(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([x % 256, y % 256, 100], (y * width + x) * 3);
  return { width, height, data };
}

describe('resizeRgb / applyOutputPlan', () => {
  it("'fill' stretches to the exact size (lanczos3 keeps a linear ramp linear)", async () => {
    const out = await resizeRgb(gradient(256, 4), 128, 8, 'fill');
    assert.deepEqual([out.width, out.height, out.data.length], [128, 8, 128 * 8 * 3]);
    for (let x = 8; x < 120; x++) {
      const r = out.data[(3 * 128 + x) * 3]!;
      assert.ok(Math.abs(r - (2 * x + 0.5)) <= 1, `x=${x}: ${r} vs ${2 * x + 0.5}`);
    }
    assert.equal(out.data[(3 * 128 + 64) * 3 + 2], 100, 'constant channel stays constant');
  });

  it("'cover' scales to cover and centre-crops", async () => {
    // 40×20: red | green (middle half) | blue. Cover 20×20 → scale 1, keep x 10…29: all green, exactly.
    const img: RgbImage = { width: 40, height: 20, data: new Uint8Array(40 * 20 * 3) };
    for (let y = 0; y < 20; y++) for (let x = 0; x < 40; x++) img.data.set(x < 10 ? [255, 0, 0] : x < 30 ? [0, 255, 0] : [0, 0, 255], (y * 40 + x) * 3);
    const out = await resizeRgb(img, 20, 20, 'cover');
    assert.deepEqual([out.width, out.height], [20, 20]);
    assert.ok(out.data.every((v, i) => v === (i % 3 === 1 ? 255 : 0)));
    const half = await resizeRgb(img, 10, 10, 'cover'); // scale 0.5, middle columns green
    assert.deepEqual([half.width, half.height], [10, 10]);
    const mid = half.data.subarray((5 * 10 + 5) * 3, (5 * 10 + 5) * 3 + 3);
    assert.deepEqual([...mid], [0, 255, 0]);
  });

  it('applies a plan: an exact crop moves pixels without resampling', async () => {
    const p = resolveOutputSize({ imageSize: { width: 64, height: 64 }, inputSize: { width: 150, height: 100 }, preserveAspectRatio: true, cropOutput: true, maxPixels: BIG });
    assert.deepEqual(sizes(p), [96, 64, 64, 64]);
    assert.deepEqual(p.crop, { left: 16, top: 0, width: 64, height: 64 });
    const out = await applyOutputPlan(gradient(96, 64), p);
    assert.deepEqual([out.width, out.height], [64, 64]);
    for (const [x, y] of [[0, 0], [63, 63], [10, 40]] as const) {
      assert.deepEqual([...out.data.subarray((y * 64 + x) * 3, (y * 64 + x) * 3 + 3)], [x + 16, y, 100]);
    }
  });

  it('applies a capped plan: region cropped then scaled to the final size', async () => {
    const p: OutputPlan = { generateWidth: 96, generateHeight: 64, finalWidth: 128, finalHeight: 128, crop: { left: 16, top: 0, width: 64, height: 64 } };
    const out = await applyOutputPlan(gradient(96, 64), p);
    assert.deepEqual([out.width, out.height], [128, 128]);
    const r = out.data[(64 * 128 + 64) * 3]!; // centre ≈ source x 16 + 32
    assert.ok(Math.abs(r - 48) <= 1, String(r));
  });

  it('rejects malformed images', async () => {
    await assert.rejects(resizeRgb({ width: 2, height: 2, data: new Uint8Array(5) }, 4, 4, 'fill'), { code: 'INTERNAL' });
  });
});

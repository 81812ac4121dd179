/**
 * Output images: cropped to the delivered size, encoded, then either written under the outputs folder
 * (served at stable URLs `/outputs/<request id>/<n>.<ext>`, stored relative to the server's base URL) or returned as data URIs (sync_mode, nothing stored).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { RgbImage } from '../contract/types.ts';
import { encodeImage } from '../images/codec.ts';
import { applyOutputPlan } from '../images/sizes.ts';
import type { Job } from './queue.ts';

export interface WireImage {
  url: string;
  width: number;
  height: number;
  content_type: string;
}

export const OUTPUT_EXT = { jpeg: 'jpg', png: 'png' } as const;

/** Path of an output file below the outputs folder; `id` and `index` are ours, never user text. */
export function outputPath(outputsDir: string, id: string, index: number, format: 'jpeg' | 'png'): string {
  return path.join(outputsDir, id, `${index}.${OUTPUT_EXT[format]}`);
}

export async function deliverImages(images: RgbImage[], job: Job, outputsDir: string): Promise<WireImage[]> {
  const o = job.input.output;
  const out: WireImage[] = [];
  for (const [i, generated] of images.entries()) {
    const img = await applyOutputPlan(generated, {
      generateWidth: generated.width,
      generateHeight: generated.height,
      finalWidth: o.finalWidth,
      finalHeight: o.finalHeight,
      ...(o.crop ? { crop: o.crop } : {}),
    });
    const { bytes, contentType } = await encodeImage(img, o.format);
    let url: string;
    if (o.syncMode) {
      url = `data:${contentType};base64,${bytes.toString('base64')}`;
    } else {
      const file = outputPath(outputsDir, job.id, i, o.format);
      await fs.mkdir(path.dirname(file), { recursive: true });
      const tmp = `${file}.tmp`;
      await fs.writeFile(tmp, bytes);
      await fs.rename(tmp, file); // a reader never sees a half-written file
      url = `/outputs/${job.id}/${i}.${OUTPUT_EXT[o.format]}`; // made absolute when delivered (wire.ts)
    }
    out.push({ url, width: img.width, height: img.height, content_type: contentType });
  }
  return out;
}

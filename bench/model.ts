/**
 * The benchmark's full-size model: SDXL base 1.0 architecture with deterministic random fp32 weights
 * (makeTestModel, diffusers layout, seed 0), generated once (~14 GB) into the bench folder, never into git.
 */
import fs from 'node:fs';
import path from 'node:path';
import { makeTestModel } from '../src/weights/test-model.ts';

const WEIGHT_FILES = [
  'unet/diffusion_pytorch_model.safetensors',
  'vae/diffusion_pytorch_model.safetensors',
  'text_encoder/model.safetensors',
  'text_encoder_2/model.safetensors',
];

/** Complete when model_index.json and every component's weights exist (each weight file is renamed into place when written). */
export function isCompleteModel(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'model_index.json')) && WEIGHT_FILES.every((f) => fs.existsSync(path.join(dir, f)));
}

export function modelBytes(dir: string): number {
  return WEIGHT_FILES.reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
}

/** Generates the model when missing (into a temporary folder, renamed when complete); returns seconds spent (0 if present). */
export async function ensureFullModel(dir: string, log: (s: string) => void): Promise<number> {
  if (isCompleteModel(dir)) return 0;
  if (fs.existsSync(dir)) throw new Error(`${dir} exists but is not a complete SDXL diffusers folder; remove it or point ATELIER_BENCH_MODEL elsewhere`);
  const tmp = `${dir}.tmp-${process.pid}`;
  log(`generating full-size random SDXL (fp32, ~14 GB) into ${dir} …`);
  const t0 = performance.now();
  try {
    await makeTestModel({ outDir: tmp, layout: 'diffusers', seed: 0, size: 'full' });
    fs.renameSync(tmp, dir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const s = (performance.now() - t0) / 1000;
  log(`generated in ${s.toFixed(0)} s`);
  return s;
}

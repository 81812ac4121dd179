import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { runPipeline } from '../pipeline/generate.ts';
import { requestFromTrace } from '../pipeline/trace-request.ts';
import { openModel } from './model-manager.ts';

test('quantised UNet option: the cache is written once, images stay close to fp32', async () => {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-quant-'));
  const src = path.join(oracleDir(), 'tiny-sdxl');
  const { request } = await requestFromTrace(oracleDir(), 'txt2img_trace');
  const fp32 = await openModel('tiny', src, { cacheDir, settings: { threads: 2 } });
  const ref = await runPipeline(fp32.pipeline, request);
  await fp32.release();
  for (const scheme of ['int8', 'int8-block'] as const) {
    const q = await openModel('tiny', src, { cacheDir, settings: { threads: 2 }, quantize: scheme });
    const out = await runPipeline(q.pipeline, request);
    await q.release();
    let sum = 0;
    for (let i = 0; i < ref.imagesFloat.length; i++) sum += Math.abs(ref.imagesFloat[i] - out.imagesFloat[i]);
    const mean = sum / ref.imagesFloat.length;
    assert.ok(mean > 0, `${scheme}: the quantised path must actually run`);
    assert.ok(mean < 0.05, `${scheme}: mean abs difference to fp32 ${mean}`);
  }
  const files = fs.readdirSync(cacheDir, { recursive: true }).map(String).filter((f) => f.endsWith('.safetensors'));
  assert.deepEqual(files.map((f) => path.basename(f)).sort(), ['unet-int8-block.safetensors', 'unet-int8.safetensors']);
});

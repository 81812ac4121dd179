import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureFp32Component, needsFp32 } from './fp32-cache.ts';
import { sourceFingerprint } from './derived-cache.ts';
import { readSafetensorsHeader, readTensorF32, tensorRefOf, writeSafetensors } from './safetensors.ts';
import type { TensorRef } from './types.ts';

test('fp32 cache: bf16 + fp16 converted exactly, transposed flag kept, corrupt cache rebuilt', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atelier-cache-'));
  const src = path.join(dir, 'src.safetensors');
  const values = Float32Array.from([1, -2, 0.5, 3.25, -0.125, 8]);
  await writeSafetensors(src, [
    { name: 'a', dtype: 'BF16', shape: [2, 3], data: values },
    { name: 'b', dtype: 'F16', shape: [3, 2], data: values },
  ]);
  const h = await readSafetensorsHeader(src);
  const weights = new Map<string, TensorRef>([
    ['x.weight', tensorRefOf(h, 'a')],
    ['proj.weight', { ...tensorRefOf(h, 'b'), shape: [2, 3], transposed: true }],
  ]);
  assert.ok(needsFp32(weights));
  const fp = await sourceFingerprint(src, [src]);
  const opts = { cacheDir: path.join(dir, 'cache'), fingerprint: fp, component: 'unet' as const, source: src };
  const c1 = await ensureFp32Component(weights, opts);
  assert.equal(c1.created, true);
  assert.equal(c1.root, path.join(dir, 'cache', fp));
  assert.ok(!needsFp32(c1.weights));
  assert.deepEqual(Array.from(await readTensorF32(c1.weights.get('x.weight')!)), Array.from(values));
  assert.deepEqual(c1.weights.get('proj.weight')!.shape, [2, 3]);
  assert.equal(c1.weights.get('proj.weight')!.transposed, true);
  assert.equal((await ensureFp32Component(weights, opts)).created, false);
  await writeFile(c1.file, 'garbage'); // a damaged cache is rebuilt, not trusted
  const c3 = await ensureFp32Component(weights, opts);
  assert.equal(c3.created, true);
  assert.deepEqual(Array.from(await readTensorF32(c3.weights.get('x.weight')!)), Array.from(values));
  // the fingerprint follows size and mtime
  const later = new Date((await stat(src)).mtimeMs + 10_000);
  await utimes(src, later, later);
  assert.notEqual(await sourceFingerprint(src, [src]), fp);
  await rm(dir, { recursive: true });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import { loadModel } from '../weights/load-model.ts';
import { ensureDefaultTestModel, makeTestModelCommand } from './make-test-model.ts';

test('make-test-model command writes a loadable single file; bad flags are refused', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atelier-cli-tm-'));
  const file = path.join(dir, 'm.safetensors');
  await makeTestModelCommand(['--out', file, '--layout', 'single-file', '--seed', '4', '--dtype', 'f16']);
  const m = await loadModel(file, { cacheDir: path.join(dir, 'cache') });
  assert.equal(m.layout, 'single-file');
  assert.equal(m.config.unet.crossAttentionDim, 96);
  for (const argv of [['--out', dir, '--layout', 'ckpt'], ['--out', dir, '--size', 'huge'], ['--layout', 'diffusers'], ['--out', dir, '--seed', '-1']]) {
    await assert.rejects(makeTestModelCommand(argv), (e: unknown) => e instanceof AtelierError && e.code === 'INVALID_INPUT');
  }
  await rm(dir, { recursive: true });
});

test('ensureDefaultTestModel creates the tiny model once, atomically', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atelier-cli-tm-'));
  const p = await ensureDefaultTestModel(dir);
  assert.equal(p, path.join(dir, 'models', 'atelier-tiny-sdxl'));
  const mtime = (await stat(path.join(p, 'unet', 'diffusion_pytorch_model.safetensors'))).mtimeMs;
  assert.equal(await ensureDefaultTestModel(dir), p);
  assert.equal((await stat(path.join(p, 'unet', 'diffusion_pytorch_model.safetensors'))).mtimeMs, mtime);
  assert.deepEqual(await readdir(path.join(dir, 'models')), ['atelier-tiny-sdxl']); // no temp folder left
  const m = await loadModel(p, { cacheDir: path.join(dir, 'cache') });
  assert.equal(m.weights.textEncoder1.get('text_model.embeddings.token_embedding.weight')!.shape[0], 49408);
  await rm(dir, { recursive: true });
});

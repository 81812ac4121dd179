import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { discoverModels } from './discover.ts';
import { writeSafetensors } from './safetensors.ts';

async function st(file: string, names: string[]): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeSafetensors(file, names.map((name) => ({ name, dtype: 'F32', shape: [1], data: new Float32Array(1) })));
}

async function diffusersFolder(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'unet'), { recursive: true });
  await writeFile(path.join(dir, 'model_index.json'), '{}');
}

const names = (xs: { name: string }[]): string[] => xs.map((x) => x.name);

test('A1111 layout (models/Stable-diffusion, models/Lora, embeddings)', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atelier-disc-'));
  await st(path.join(dir, 'models/Stable-diffusion/sd_xl_base_1.0.safetensors'), ['x']);
  await st(path.join(dir, 'models/Stable-diffusion/sdxl/juggernaut.safetensors'), ['x']);
  await writeFile(path.join(dir, 'models/Stable-diffusion/old.ckpt'), 'pickle');
  await st(path.join(dir, 'models/Lora/detail.safetensors'), ['x']);
  await st(path.join(dir, 'embeddings/neg.safetensors'), ['x']);
  const found = await discoverModels(dir);
  assert.deepEqual(names(found.checkpoints), ['sd_xl_base_1.0', 'sdxl/juggernaut']);
  assert.equal(found.checkpoints[0].path, path.join(dir, 'models/Stable-diffusion/sd_xl_base_1.0.safetensors'));
  assert.equal(found.checkpoints[0].layout, 'single-file');
  assert.deepEqual(names(found.loras), ['detail']);
  assert.deepEqual(names(found.embeddings), ['neg']);
  await rm(dir, { recursive: true });
});

test('ComfyUI layout given the models folder itself, with a diffusers folder', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atelier-disc-'));
  await st(path.join(dir, 'checkpoints/a.safetensors'), ['x']);
  await diffusersFolder(path.join(dir, 'diffusers/my-sdxl'));
  await st(path.join(dir, 'loras/style/b.safetensors'), ['x']);
  await st(path.join(dir, 'embeddings/c.safetensors'), ['x']);
  const found = await discoverModels(dir);
  assert.deepEqual(found.checkpoints.map((c) => [c.name, c.layout]), [['a', 'single-file'], ['my-sdxl', 'diffusers']]);
  assert.deepEqual(names(found.loras), ['style/b']);
  assert.deepEqual(names(found.embeddings), ['c']);
  await rm(dir, { recursive: true });
});

test('flat folder: loose files classified by header keys, diffusers folders found', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atelier-disc-'));
  await st(path.join(dir, 'model.safetensors'), ['model.diffusion_model.out.0.weight', 'first_stage_model.x']);
  await st(path.join(dir, 'lora.safetensors'), ['lora_unet_a.lora_down.weight']);
  await st(path.join(dir, 'peft.safetensors'), ['unet.a.lora_A.weight']);
  await st(path.join(dir, 'ti.safetensors'), ['clip_l', 'clip_g']);
  await st(path.join(dir, 'other.safetensors'), ['foo']);
  await writeFile(path.join(dir, 'broken.safetensors'), 'nope');
  await diffusersFolder(path.join(dir, 'folder-model'));
  await mkdir(path.join(dir, 'random-folder'));
  const found = await discoverModels(dir);
  assert.deepEqual(names(found.checkpoints), ['folder-model', 'model']);
  assert.deepEqual(names(found.loras), ['lora', 'peft']);
  assert.deepEqual(names(found.embeddings), ['ti']);
  await rm(dir, { recursive: true });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { AtelierError } from '../contract/errors.ts';
import { detectSource } from './detect.ts';
import { loadModel } from './load-model.ts';
import { readSafetensorsHeader, readTensorRaw, tensorRefOf, writeSafetensors, type WriteEntry } from './safetensors.ts';

const single = path.join(oracleDir(), 'tiny-sdxl.safetensors');

async function tmp(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'atelier-detect-'));
}

function rejectsWith(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  return assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof AtelierError, String(e));
    assert.equal(e.code, 'CHECKPOINT_INVALID');
    assert.match(e.message, pattern);
    return true;
  });
}

const small = (name: string): WriteEntry => ({ name, dtype: 'F32', shape: [2], data: new Float32Array(2) });

/** The oracle single file with some keys dropped and others renamed/added. */
async function variant(file: string, keep: (key: string) => boolean, extra: WriteEntry[] = []): Promise<void> {
  const h = await readSafetensorsHeader(single);
  const entries: WriteEntry[] = [...h.tensors].filter(([k]) => keep(k)).map(([name, e]) => ({
    name, dtype: e.dtype, shape: e.shape, data: async () => new Uint8Array(await readTensorRaw(tensorRefOf(h, name))),
  }));
  await writeSafetensors(file, [...entries, ...extra]);
}

test('detectSource: folder, file, pickle, other extension, missing path', async () => {
  const dir = await tmp();
  assert.deepEqual(await detectSource(path.join(oracleDir(), 'tiny-sdxl')), { layout: 'diffusers', root: path.join(oracleDir(), 'tiny-sdxl') });
  assert.deepEqual(await detectSource(single), { layout: 'single-file', file: single });
  for (const name of ['model.ckpt', 'model.pt', 'pytorch_model.bin']) {
    await writeFile(path.join(dir, name), 'x');
    await rejectsWith(detectSource(path.join(dir, name)), /pickle .*arbitrary code/);
  }
  await writeFile(path.join(dir, 'model.gguf'), 'x');
  await rejectsWith(detectSource(path.join(dir, 'model.gguf')), /not a \.safetensors file/);
  await rejectsWith(detectSource(path.join(dir, 'nope')), /does not exist/);
  await mkdir(path.join(dir, 'empty'));
  await rejectsWith(detectSource(path.join(dir, 'empty')), /not a diffusers model/);
  await rm(dir, { recursive: true });
});

test('single files that are not complete SDXL checkpoints say what was found and what is missing', async () => {
  const dir = await tmp();
  const opts = { cacheDir: path.join(dir, 'cache') };
  const noTe2 = path.join(dir, 'no-te2.safetensors');
  await variant(noTe2, (k) => !k.startsWith('conditioner.embedders.1.'));
  await rejectsWith(loadModel(noTe2, opts), /found 840 UNet tensors, 180 VAE tensors, 68 text encoder 1 \(CLIP-L\) tensors; no text encoder 2 \(OpenCLIP bigG\) \(conditioner\.embedders\.1\.model\.\*\)/);

  const sd15 = path.join(dir, 'sd15.safetensors');
  await variant(sd15, (k) => !k.startsWith('conditioner.'), [small('cond_stage_model.transformer.text_model.final_layer_norm.weight')]);
  await rejectsWith(loadModel(sd15, opts), /no text encoder 1.*It looks like an SD 1\.x\/2\.x checkpoint/);

  const lora = path.join(dir, 'lora.safetensors');
  await writeSafetensors(lora, [small('lora_unet_down_blocks_0_attn.lora_down.weight'), small('lora_unet_down_blocks_0_attn.lora_up.weight')]);
  await rejectsWith(loadModel(lora, opts), /found 2 tensors but none of an SDXL checkpoint.*It looks like a LoRA/);

  const random = path.join(dir, 'random.safetensors');
  await writeSafetensors(random, [small('foo'), small('bar.baz')]);
  await rejectsWith(loadModel(random, opts), /found 2 tensors but none of an SDXL checkpoint; no UNet/);

  const extra = path.join(dir, 'extra.safetensors');
  await variant(extra, () => true, [small('model.diffusion_model.input_blocks.99.0.mystery.weight')]);
  await rejectsWith(loadModel(extra, opts), /1 tensors match no SDXL layout \("model\.diffusion_model\.input_blocks\.99\.0\.mystery\.weight"\)/);

  const noLabel = path.join(dir, 'no-label.safetensors');
  await variant(noLabel, (k) => !k.includes('label_emb'));
  await rejectsWith(loadModel(noLabel, opts), /UNet lacks "add_embedding\.linear_1\.weight"/);
  await rm(dir, { recursive: true });
});

test('diffusers folder with a missing component or pickle weights is refused', async () => {
  const dir = await tmp();
  const root = path.join(dir, 'model');
  await cp(path.join(oracleDir(), 'tiny-sdxl'), root, { recursive: true });
  await rm(path.join(root, 'text_encoder_2'), { recursive: true });
  await rejectsWith(loadModel(root, { cacheDir: dir }), /found 840 UNet tensors, 180 VAE tensors, 68 text encoder 1 \(CLIP-L\) tensors; .*no text encoder 2 \(text_encoder_2\/\) weights.*folder is missing/);
  await mkdir(path.join(root, 'text_encoder_2'));
  await writeFile(path.join(root, 'text_encoder_2', 'pytorch_model.bin'), 'x');
  await rejectsWith(loadModel(root, { cacheDir: dir }), /pytorch_model\.bin: pickle weights are refused/);
  await rm(dir, { recursive: true });
});

test('diffusers fp16 variant file names and shard indexes are found', async () => {
  const dir = await tmp();
  const root = path.join(dir, 'model');
  await cp(path.join(oracleDir(), 'tiny-sdxl'), root, { recursive: true });
  const { rename } = await import('node:fs/promises');
  await rename(path.join(root, 'vae', 'diffusion_pytorch_model.safetensors'), path.join(root, 'vae', 'diffusion_pytorch_model.fp16.safetensors'));
  // shard the text encoder: split its one file in two
  const te = path.join(root, 'text_encoder', 'model.safetensors');
  const h = await readSafetensorsHeader(te);
  const names = [...h.tensors.keys()];
  const weightMap: Record<string, string> = {};
  for (const [i, part] of [names.slice(0, 30), names.slice(30)].entries()) {
    const shard = `model-0000${i + 1}-of-00002.safetensors`;
    const entries: WriteEntry[] = [];
    for (const n of part) {
      weightMap[n] = shard;
      entries.push({ name: n, dtype: h.tensors.get(n)!.dtype, shape: h.tensors.get(n)!.shape, data: new Uint8Array(await readTensorRaw(tensorRefOf(h, n))) });
    }
    await writeSafetensors(path.join(root, 'text_encoder', shard), entries);
  }
  await rm(te);
  await writeFile(path.join(root, 'text_encoder', 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  const m = await loadModel(root, { cacheDir: dir });
  assert.equal(m.weights.vae.size, 180);
  assert.equal(m.weights.textEncoder1.size, 68);
  assert.equal(new Set([...m.weights.textEncoder1.values()].map((t) => t.file)).size, 2);
  await rm(dir, { recursive: true });
});

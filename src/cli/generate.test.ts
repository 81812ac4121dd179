import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { oracleDir, repoRoot } from '../paths.ts';
import { parseEmbeddingFlag, parseLoraFlag } from './generate.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-cli-'));

function atelier(...args: string[]) {
  return spawnSync(process.execPath, [path.join(repoRoot, 'bin/atelier.mjs'), ...args], { encoding: 'utf8', cwd: tmp });
}

test('atelier generate: text-to-image then image-to-image, with a progress bar, reproducible from the seed', () => {
  const model = path.join(oracleDir(), 'tiny-sdxl');
  const a = atelier('generate', '--model', model, '--prompt', 'a red fox', '--steps', '3', '--width', '128', '--height', '96', '--seed', '5', '--out', 'a.png');
  assert.equal(a.status, 0, a.stderr);
  assert.match(a.stderr, /step 3\/3/);
  const out = JSON.parse(a.stdout);
  assert.equal(out.seed, 5);
  const again = atelier('generate', '--model', model, '--prompt', 'a red fox', '--steps', '3', '--width', '128', '--height', '96', '--seed', '5', '--out', 'b.png');
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(fs.readFileSync(path.join(tmp, 'a.png')), fs.readFileSync(path.join(tmp, 'b.png')));

  const i2i = atelier('generate', '--model', model, '--image', 'a.png', '--prompt', 'a blue fox', '--strength', '0.5', '--steps', '4', '--out', 'c.jpg', '--num-images', '2');
  assert.equal(i2i.status, 0, i2i.stderr);
  assert.match(i2i.stderr, /step 2\/2/); // strength 0.5 of 4 steps
  for (const f of ['c-1.jpg', 'c-2.jpg']) assert.ok(fs.existsSync(path.join(tmp, f)), f);
  assert.notDeepEqual(fs.readFileSync(path.join(tmp, 'c-1.jpg')), fs.readFileSync(path.join(tmp, 'c-2.jpg')));
});

test('atelier generate: bad flags are clear errors', async () => {
  const r = atelier('generate', '--prompt', 'x', '--steps', '99');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--steps must be an integer in 1–65, got 99/);
  const s = atelier('generate', '--prompt', 'x', '--sampler', 'plms');
  assert.match(s.stderr, /--sampler must be one of euler, euler_ancestral/);
  const u = atelier('generate', '--prompt', 'x', '--bogus', '1');
  assert.match(u.stderr, /unknown flag --bogus/);
  const w = atelier('generate', '--prompt', 'x', '--weights', 'fp8');
  assert.match(w.stderr, /--weights must be one of fp32, fp16, got "fp8"/);
  const v = atelier('generate', '--prompt', 'x', '--vae-quantize', 'int4');
  assert.match(v.stderr, /--vae-quantize must be one of int8, off, got "int4"/);
  const meta = await sharp(path.join(tmp, 'a.png')).metadata();
  assert.equal(meta.width, 128);
  assert.equal(meta.height, 96);
  const jpeg = await sharp(path.join(tmp, 'c-1.jpg')).metadata();
  assert.equal(jpeg.format, 'jpeg');
});

test('--lora and --embedding flag syntax', () => {
  assert.deepEqual(parseLoraFlag('/x/style.safetensors:0.8'), { file: '/x/style.safetensors', scale: 0.8 });
  assert.equal(parseLoraFlag('/x/style.safetensors').scale, 1);
  assert.throws(() => parseLoraFlag('/x/a.safetensors:7'), /scale must be in 0–4/);
  assert.deepEqual(parseEmbeddingFlag('/x/ti.safetensors:<a>,<b>'), { file: '/x/ti.safetensors', tokens: ['<a>', '<b>'] });
  assert.deepEqual(parseEmbeddingFlag('/x/ti.safetensors').tokens, ['<s0>', '<s1>']);
});

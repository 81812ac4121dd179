import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { oracleDir, repoRoot } from '../paths.ts';
import { parseEmbeddingFlag, parseLoraFlag } from './generate.ts';
import { MAX_PROMPT_CHARS, REQUEST_FIELDS } from '../contract/fields.ts';

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
  // ranges, allowed values and messages come from the request field table, the same as the API's
  assert.match(r.stderr, /--steps: 99 is out of range; allowed 1 – 65/);
  const s = atelier('generate', '--prompt', 'x', '--sampler', 'plms');
  assert.match(s.stderr, /--sampler: "plms" is not allowed; expected one of euler, euler_ancestral/);
  const u = atelier('generate', '--prompt', 'x', '--bogus', '1');
  assert.match(u.stderr, /"--bogus" is not valid; expected one of --prompt/);
  const w = atelier('generate', '--prompt', 'x', '--weights', 'fp8');
  assert.match(w.stderr, /--weights \/ ATELIER_WEIGHTS: "fp8" is not valid; expected one of fp32, fp16/);
  const v = atelier('generate', '--prompt', 'x', '--vae-quantize', 'int4');
  assert.match(v.stderr, /--vae-quantize \/ ATELIER_VAE_QUANTIZE: "int4" is not valid; expected one of int8, off/);
  const seed = atelier('generate', '--prompt', 'x', '--seed', String(2 ** 53));
  assert.match(seed.stderr, /--seed: 9007199254740992 is out of range; allowed 0 – 2\^53-1/);
  // a rule spanning two fields, refused before any model is loaded
  const lcm = atelier('generate', '--prompt', 'x', '--sampler', 'lcm', '--steps', '60');
  assert.equal(lcm.status, 2);
  assert.match(lcm.stderr, /--steps: 60 is out of range for sampler "lcm"; allowed 1 – 50/);
  const lora = atelier('generate', '--prompt', 'x', '--lora', '/x/a.safetensors:7');
  assert.match(lora.stderr, /--lora 1 scale: 7 is out of range; allowed 0 – 4/);
  const meta = await sharp(path.join(tmp, 'a.png')).metadata();
  assert.equal(meta.width, 128);
  assert.equal(meta.height, 96);
  const jpeg = await sharp(path.join(tmp, 'c-1.jpg')).metadata();
  assert.equal(jpeg.format, 'jpeg');
});

test('--lora and --embedding flag syntax', () => {
  assert.deepEqual(parseLoraFlag('/x/style.safetensors:0.8'), { file: '/x/style.safetensors', scale: 0.8 });
  assert.equal(parseLoraFlag('/x/style.safetensors').scale, 1);
  assert.equal(parseLoraFlag('/x/a.safetensors:0.25').scale, 0.25);
  assert.deepEqual(parseEmbeddingFlag('/x/ti.safetensors:<a>,<b>'), { file: '/x/ti.safetensors', tokens: ['<a>', '<b>'] });
  assert.deepEqual(parseEmbeddingFlag('/x/ti.safetensors').tokens, ['<s0>', '<s1>']);
});

test('generate --help is derived from the field table: every CLI field with its range and default', () => {
  const r = atelier('generate', '--help');
  assert.equal(r.status, 0, r.stderr);
  for (const f of REQUEST_FIELDS.filter((x) => x.cli)) {
    const line = r.stdout.split('\n').find((l) => l.trimStart().startsWith(`--${f.cli} `));
    assert.ok(line, `--${f.cli} listed`);
    assert.ok(line.includes(f.description), `--${f.cli} help`);
    if (f.default !== undefined) assert.ok(line.includes(`default ${JSON.stringify(f.default)}`), `--${f.cli} default`);
  }
  assert.match(r.stdout, /--steps <n> +denoising steps \(1 – 65; default 25\)/);
  assert.match(r.stdout, /--quantize <v> +ATELIER_QUANTIZE/);
});

test('generate: --prompt and --negative-prompt have the API bound (from the field table), in --help and in errors', () => {
  const long = 'a'.repeat(MAX_PROMPT_CHARS + 1);
  const p = atelier('generate', '--prompt', long);
  assert.equal(p.status, 2);
  assert.match(p.stderr, new RegExp(`--prompt: is ${MAX_PROMPT_CHARS + 1} characters long; at most ${MAX_PROMPT_CHARS} allowed`));
  const n = atelier('generate', '--prompt', 'x', '--negative-prompt', long);
  assert.equal(n.status, 2);
  assert.match(n.stderr, new RegExp(`--negative-prompt: is ${MAX_PROMPT_CHARS + 1} characters long; at most ${MAX_PROMPT_CHARS} allowed`));
  const help = atelier('generate', '--help').stdout.split('\n');
  for (const flag of ['--prompt ', '--negative-prompt ']) {
    assert.match(help.find((l) => l.trimStart().startsWith(flag)) ?? '', new RegExp(`at most ${MAX_PROMPT_CHARS} characters`), flag);
  }
});

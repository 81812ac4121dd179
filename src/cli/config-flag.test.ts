import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { oracleDir, repoRoot } from '../paths.ts';
import { makeTestModel } from '../weights/test-model.ts';
import { NONSTANDARD_CONFIGS } from '../weights/test-model-spec.ts';

let tmp: string;
let folder: string;
let single: string;
before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-cli-config-'));
  folder = await makeTestModel({ outDir: path.join(tmp, 'odd'), layout: 'diffusers', seed: 3, configs: NONSTANDARD_CONFIGS });
  single = await makeTestModel({ outDir: path.join(tmp, 'odd.safetensors'), layout: 'single-file', seed: 3, configs: NONSTANDARD_CONFIGS });
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function atelier(...args: string[]) {
  return spawnSync(process.execPath, [path.join(repoRoot, 'bin/atelier.mjs'), ...args], { encoding: 'utf8', cwd: tmp });
}

test('atelier generate --config: a non-standard single file is refused without it, and with it gives the diffusers folder\'s image', () => {
  const common = ['--prompt', 'a red fox', '--steps', '2', '--width', '64', '--height', '64', '--seed', '9', '--data-dir', path.join(tmp, 'data')];
  const refused = atelier('generate', '--model', single, ...common, '--out', 'x.png');
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /Cannot be inferred: for UNet block_out_channels \[32, 64, 128\]/);
  assert.match(refused.stderr, /--config DIR/);
  const a = atelier('generate', '--model', folder, ...common, '--out', 'a.png');
  assert.equal(a.status, 0, a.stderr);
  const b = atelier('generate', '--model', single, '--config', folder, ...common, '--out', 'b.png');
  assert.equal(b.status, 0, b.stderr);
  assert.deepEqual(fs.readFileSync(path.join(tmp, 'b.png')), fs.readFileSync(path.join(tmp, 'a.png')));
});

test('atelier parity --config: the oracle single file with its diffusers configs (and so its tokenizers) matches every stage', () => {
  const r = atelier('parity', '--model', path.join(oracleDir(), 'tiny-sdxl.safetensors'), '--config', path.join(oracleDir(), 'tiny-sdxl'),
    '--trace', path.join(oracleDir(), 'components.safetensors'));
  assert.equal(r.status, 0, r.stderr);
  const stages = new Map(r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { stage: string; max_abs_err: number }).map((l) => [l.stage, l.max_abs_err]));
  assert.equal(stages.get('tokenizer/input_ids'), 0, 'the config folder\'s tokenizer is used');
  assert.equal(stages.get('tokenizer_2/input_ids'), 0);
  assert.ok(stages.get('unet/8x8/out')! <= 1e-4);
});

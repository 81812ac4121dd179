import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { oracleDir, repoRoot } from '../paths.ts';

const ORACLE = oracleDir();

/** Runs package.json's `parity` script the way `npm run parity -- ARGS` does: the script line in sh, ARGS appended. */
function npmRunParity(...args: string[]) {
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const line = pkg.scripts.parity;
  assert.ok(line, 'package.json has no parity script');
  const env = {
    ...process.env,
    PATH: [path.dirname(process.execPath), path.join(repoRoot, 'node_modules/.bin'), process.env.PATH ?? ''].join(path.delimiter),
  };
  const r = spawnSync('sh', ['-c', `${line} "$@"`, 'sh', ...args], { encoding: 'utf8', cwd: repoRoot, env });
  const lines = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { stage: string; max_abs_err: number; over?: boolean });
  return { status: r.status, lines, stderr: r.stderr };
}

test('npm run parity (package.json script) prints the per-stage JSON lines and exits 0 on the oracle components', () => {
  const r = npmRunParity('--model', path.join(ORACLE, 'tiny-sdxl'), '--trace', path.join(ORACLE, 'components.safetensors'));
  assert.equal(r.status, 0, r.stderr);
  const stages = new Map(r.lines.map((l) => [l.stage, l.max_abs_err]));
  for (const s of ['text_encoder/last_hidden_state', 'text_encoder_2/text_embeds', 'unet/8x8/out', 'vae_encode/64x64/mean', 'vae_decode/8x12/out']) {
    assert.ok(stages.has(s), `stage ${s} missing from: ${[...stages.keys()].join(', ')}`);
    assert.ok(stages.get(s)! <= 1e-4, `${s}: ${stages.get(s)}`);
  }
  assert.ok(r.lines.length >= 13, `only ${r.lines.length} lines`);
});

test('npm run parity exits non-zero when the tolerance cannot be met', () => {
  const r = npmRunParity('--model', path.join(ORACLE, 'tiny-sdxl'), '--trace', path.join(ORACLE, 'components.safetensors'), '--tolerance', '1e-12');
  assert.notEqual(r.status, 0);
  assert.ok(r.lines.some((l) => l.over === true), 'no stage marked over');
  assert.match(r.stderr, /stage\(s\) over 1e-12/);
});

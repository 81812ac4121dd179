import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { oracleDir, repoRoot } from '../paths.ts';

const ORACLE = oracleDir();

function parity(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), 'parity', ...args], { encoding: 'utf8', cwd: repoRoot });
  const lines = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { stage: string; max_abs_err: number });
  return { status: r.status, lines, stderr: r.stderr };
}

const COMPONENT_STAGES = [
  'text_encoder/hidden_states_penultimate',
  'text_encoder/last_hidden_state',
  'text_encoder/pooler_output',
  'text_encoder_2/hidden_states_penultimate',
  'text_encoder_2/last_hidden_state',
  'text_encoder_2/text_embeds',
  'unet/8x8/out',
  'unet/8x12/out',
  'vae_encode/64x64/mean',
  'vae_encode/64x64/logvar',
  'vae_encode/32x48/mean',
  'vae_decode/8x8/out',
  'vae_decode/8x12/out',
];

for (const model of ['tiny-sdxl', 'tiny-sdxl.safetensors']) {
  test(`parity on components.safetensors: every stage within 1e-4 (${model})`, () => {
    const r = parity('--model', path.join(ORACLE, model), '--trace', path.join(ORACLE, 'components.safetensors'));
    assert.equal(r.status, 0, r.stderr);
    const stages = new Map(r.lines.map((l) => [l.stage, l.max_abs_err]));
    for (const s of COMPONENT_STAGES) {
      assert.ok(stages.has(s), `stage ${s} missing`);
      assert.ok(stages.get(s)! <= 1e-4, `${s}: ${stages.get(s)}`);
    }
    if (model === 'tiny-sdxl') {
      assert.equal(stages.get('tokenizer/input_ids'), 0);
      assert.equal(stages.get('tokenizer_2/input_ids'), 0);
    }
  });
}

test('parity on a trace (img2img text encoders, first UNet step, VAE) and a failing tolerance exits 1', () => {
  const r = parity('--model', path.join(ORACLE, 'tiny-sdxl.safetensors'), '--trace', path.join(ORACLE, 'img2img_trace.safetensors'));
  assert.equal(r.status, 0, r.stderr);
  const names = r.lines.map((l) => l.stage);
  for (const s of ['text_encoder/prompt/hidden_states_penultimate', 'text_encoder_2/negative/text_embeds', 'step00/noise_pred_raw', 'vae/posterior_mean', 'vae/decode_output']) {
    assert.ok(names.includes(s), `stage ${s} missing`);
  }
  assert.ok(r.lines.every((l) => l.max_abs_err <= 1e-4));
  const strict = parity('--model', path.join(ORACLE, 'tiny-sdxl'), '--trace', path.join(ORACLE, 'txt2img_trace.safetensors'), '--tolerance', '1e-12');
  assert.equal(strict.status, 1);
  assert.match(strict.stderr, /stage\(s\) over 1e-12/);
});

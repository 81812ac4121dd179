/**
 * `atelier parity --model <folder-or-file> [--config <diffusers-config-folder>] --trace <fixture.safetensors>`: feeds a diffusers reference fixture's
 * recorded inputs to our networks and prints one JSON line per stage, {"stage", "max_abs_err"}; exits 1 when a
 * stage exceeds the tolerance (1e-4).
 */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { AtelierError } from '../contract/errors.ts';
import { loadModel } from '../weights/load-model.ts';
import { TraceFile } from '../weights/trace.ts';
import { parseFlags, helpText, type FlagSpec } from './args.ts';
import { runParity } from './parity-stages.ts';

const SPEC: FlagSpec = {
  model: { type: 'string', help: 'checkpoint: diffusers folder or single .safetensors file' },
  trace: { type: 'string', help: 'reference fixture (components.safetensors or a *_trace.safetensors)' },
  embedding: { type: 'string', help: 'textual-inversion file fed as extra token embeddings (ti_* traces)' },
  lora: { type: 'string', help: 'LoRA file:scale applied to text encoders and UNet (lora_* traces)' },
  config: { type: 'string', help: 'diffusers config folder for a single-file --model whose widths are not SDXL\'s (as from_single_file(config=...))' },
  tolerance: { type: 'number', help: 'maximum absolute error per stage (default 1e-4)' },
  'cache-dir': { type: 'string', help: 'cache folder for converted weights (default: a temp folder)' },
  help: { type: 'boolean', help: 'show this help' },
};

export async function parityCommand(argv: string[]): Promise<void> {
  const f = parseFlags(argv, SPEC);
  if (f.help) return void process.stdout.write(helpText('parity', SPEC));
  if (typeof f.model !== 'string' || typeof f.trace !== 'string') {
    throw new AtelierError('INVALID_INPUT', '--model and --trace are required', { field: f.model ? 'trace' : 'model' });
  }
  const tolerance = (f.tolerance as number | undefined) ?? 1e-4;
  const cacheDir = (f['cache-dir'] as string | undefined) ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-parity-')));
  const config = typeof f.config === 'string' ? path.resolve(f.config) : undefined;
  const model = await loadModel(path.resolve(f.model), { cacheDir, ...(config !== undefined ? { config } : {}) });
  const trace = await TraceFile.open(path.resolve(f.trace));
  let failed = 0;
  for await (const r of runParity(model, trace, {
    traceFile: path.resolve(f.trace),
    embedding: f.embedding as string | undefined,
    lora: f.lora as string | undefined,
  })) {
    const ok = r.max_abs_err <= (r.exact ? 0 : tolerance);
    if (!ok) failed++;
    process.stdout.write(JSON.stringify({ stage: r.stage, max_abs_err: r.max_abs_err, ...(ok ? {} : { over: true }) }) + '\n');
  }
  if (failed > 0) {
    process.stderr.write(`parity: ${failed} stage(s) over ${tolerance}\n`);
    process.exitCode = 1;
  }
}

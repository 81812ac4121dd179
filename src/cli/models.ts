/** `atelier models --dir <models folder>`: what the server would find there (A1111, ComfyUI or flat layout). */
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import { discoverModels } from '../weights/discover.ts';
import { helpText, parseFlags, type FlagSpec } from './args.ts';

const SPEC: FlagSpec = {
  dir: { type: 'string', env: 'ATELIER_MODELS_DIR', help: 'models folder' },
  help: { type: 'boolean', help: 'show this help' },
};

export async function modelsCommand(argv: string[]): Promise<void> {
  const f = parseFlags(argv, SPEC);
  if (f.help) return void process.stdout.write(helpText('models', SPEC));
  const dir = f.dir as string | undefined;
  if (!dir) throw new AtelierError('INVALID_INPUT', 'give --dir <models folder> or set ATELIER_MODELS_DIR', { field: 'dir' });
  const found = await discoverModels(path.resolve(dir));
  process.stdout.write(JSON.stringify(found, null, 2) + '\n');
}

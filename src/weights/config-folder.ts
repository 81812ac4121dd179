/**
 * A diffusers config folder for a single-file checkpoint, as diffusers' `from_single_file(file, config=DIR)` takes
 * it: the layout of a diffusers model folder (`unet/config.json`, `vae/config.json`, `text_encoder/config.json`,
 * `text_encoder_2/config.json`; weights, if any, are not read). Its tokenizers (`tokenizer/`, `tokenizer_2/`) are used
 * when it has them, as diffusers does.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import { DIFFUSERS_PARTS, diffusersPadTokens, diffusersTokenizers, readJsonIfPresent } from './layouts/diffusers.ts';
import type { ComponentName, SdxlModel } from './types.ts';

export interface ConfigFolder {
  configs: Record<ComponentName, Record<string, unknown>>;
  /** the config files read (they take part in the model's fingerprint) */
  files: string[];
  tokenizers: SdxlModel['tokenizers'];
  padTokens: { tokenizer1: string; tokenizer2: string };
}

export async function readConfigFolder(dir: string): Promise<ConfigFolder> {
  const root = path.resolve(dir);
  const isDir = await stat(root).then((s) => s.isDirectory(), () => false);
  if (!isDir) throw new AtelierError('CHECKPOINT_INVALID', `config folder "${root}" does not exist or is not a folder`);
  const configs = {} as Record<ComponentName, Record<string, unknown>>;
  const files: string[] = [];
  const missing: string[] = [];
  for (const part of DIFFUSERS_PARTS) {
    const file = path.join(root, part.folder, 'config.json');
    const json = await readJsonIfPresent(file);
    if (json) {
      configs[part.component] = json;
      files.push(file);
    } else missing.push(`${part.folder}/config.json`);
  }
  if (missing.length > 0) {
    throw new AtelierError('CHECKPOINT_INVALID', `config folder "${root}" lacks ${missing.join(', ')} (a diffusers model folder's layout is expected)`);
  }
  return { configs, files, tokenizers: await diffusersTokenizers(root), padTokens: await diffusersPadTokens(root) };
}

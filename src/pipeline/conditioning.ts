/**
 * SDXL conditioning: both text encoders → prompt embeddings (concat of the penultimate hidden states),
 * pooled embedding (text_encoder_2's projection), and add_time_ids.
 * Long prompts: chunks of 75 tokens + BOS/EOS, each encoded separately and concatenated along the sequence
 * (as AUTOMATIC1111 and ComfyUI do); the pooled embedding comes from the first chunk.
 */
import type { LoraFeeds } from '../networks/runtime.ts';

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

function padChunks(a: number[][], b: number[][], emptyA: number[], emptyB: number[]): void {
  while (a.length < b.length) a.push(emptyA);
  while (b.length < a.length) b.push(emptyB);
}

/** Encode one prompt (optionally forcing at least `minChunks` chunks, padded with empty-prompt chunks). */
export async function encodePrompt(set: EncoderSet, prompt: string, minChunks = 1): Promise<PromptEmbeds & { chunks: number }> {
  const [t1, t2] = set.tokenizers;
  const c1 = t1.tokenizeForModel(prompt, { long: set.long });
  const c2 = t2.tokenizeForModel(prompt, { long: set.long });
  const e1 = t1.tokenizeForModel(EMPTY_PROMPT, { long: 'truncate' })[0];
  const e2 = t2.tokenizeForModel(EMPTY_PROMPT, { long: 'truncate' })[0];
  padChunks(c1, c2, e1, e2);
  while (c1.length < minChunks) {
    c1.push(e1);
    c2.push(e2);
  }
  const chunks = c1.length;
  const ids1 = BigInt64Array.from(c1.flat().map(BigInt)); // [chunks, 77]
  const ids2 = BigInt64Array.from(c2.flat().map(BigInt)); // [chunks, 77]
  const [enc1, enc2] = set.encoders;
  const r1 = await enc1.encode(ids1, chunks, { extraEmbeddings: set.extraEmbeddings?.[0], lora: set.lora?.[0] });
  const r2 = await enc2.encode(ids2, chunks, { extraEmbeddings: set.extraEmbeddings?.[1], lora: set.lora?.[1] });
  const d1 = enc1.hiddenSize;
  const d2 = enc2.hiddenSize;
  const tokens = ids1.length; // chunks × 77
  const embeds = new Float32Array(tokens * (d1 + d2)); // [chunks·77, d1 + d2]
  for (let t = 0; t < tokens; t++) {
    embeds.set(r1.penultimate.subarray(t * d1, (t + 1) * d1), t * (d1 + d2));
    embeds.set(r2.penultimate.subarray(t * d2, (t + 1) * d2), t * (d1 + d2) + d1);
  }
  const p = r2.pooled.length / chunks;
  return { embeds, seqLen: tokens, pooled: r2.pooled.slice(0, p), chunks };
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
  opts: { prompt: string; negativePrompt: string | null; guidanceScale: number; numImages: number; height: number; width: number; cropTopLeft?: readonly [number, number] },
): Promise<Conditioning & { positive: PromptEmbeds }> {
  const cfg = opts.guidanceScale > 1;
  let pos = await encodePrompt(set, opts.prompt);
  let neg: PromptEmbeds | null = null;
  if (cfg) {
    if (opts.negativePrompt === null) {
      neg = { embeds: new Float32Array(pos.embeds.length), seqLen: pos.seqLen, pooled: new Float32Array(pos.pooled.length) };
    } else {
      const n = await encodePrompt(set, opts.negativePrompt, pos.chunks);
      if (n.chunks > pos.chunks) pos = await encodePrompt(set, opts.prompt, n.chunks);
      neg = n;
    }
  }
  const n = opts.numImages;
  const ids = Float32Array.from(timeIds(opts.height, opts.width, opts.cropTopLeft));
  const batch = cfg ? 2 * n : n;
  const hidden = cfg ? repeat([neg!.embeds, pos.embeds], n) : repeat([pos.embeds], n);
  const pooled = cfg ? repeat([neg!.pooled, pos.pooled], n) : repeat([pos.pooled], n);
  return { encoderHiddenStates: hidden, seqLen: pos.seqLen, textEmbeds: pooled, timeIds: repeat([ids], batch), batch, cfg, positive: pos };
}

/**
 * SDXL's two text encoders as ONNX graphs from one builder: CLIP ViT-L/14 text (`text_encoder`, quick_gelu) and
 * OpenCLIP ViT-bigG/14 text with its projection (`text_encoder_2`, gelu, `text_projection` without bias).
 * Architecture: pre-LN causal transformer (Radford et al. 2021, "Learning Transferable Visual Models From Natural
 * Language Supervision"; transformers `models/clip/modeling_clip.py` CLIPTextTransformer).
 *
 * Textual-inversion tokens: ids ≥ vocabSize index rows of the `extra_embeddings` input (id − vocabSize), so new
 * embeddings are switched per request without touching the token table.
 */
import { AtelierError } from '../contract/errors.ts';
import { GraphBuilder, MS_DOMAIN, type Value } from '../onnx/graph.ts';
import type { TensorIn } from '../onnx/session.ts';
import type { ClipTextConfig, SdxlModel } from '../weights/types.ts';
import { gelu, layerNorm, linear, newContext, quickGelu, weight, type LoraSlot, type NetContext } from './blocks.ts';
import { NetworkSession, type BuiltNetwork, type SessionSettings } from './runtime.ts';

export type TextEncoderName = 'textEncoder1' | 'textEncoder2';

/** Graph input/output names. */
export const CLIP_IO = Object.freeze({
  inputIds: 'input_ids',
  extraEmbeddings: 'extra_embeddings',
  penultimate: 'hidden_states_penultimate',
  lastHidden: 'last_hidden_state',
  pooled: 'pooled',
  textEmbeds: 'text_embeds',
});

const LABEL: Record<TextEncoderName, string> = { textEncoder1: 'text_encoder', textEncoder2: 'text_encoder_2' };

/**
 * Additive causal bias [1, 1, S, S]: 0 where key ≤ query, float32 min above the diagonal (as transformers' CLIP).
 * Passed as MultiHeadAttention's `attention_bias` (input 5) rather than `unidirectional=1`, which the WebGPU
 * kernel refuses.
 */
function causalBias(g: GraphBuilder, S: number): Value {
  const bias = new Float32Array(S * S);
  for (let q = 0; q < S; q++) for (let k = q + 1; k < S; k++) bias[q * S + k] = -3.4028234663852886e38;
  return g.constF32(bias, [1, 1, S, S]);
}

/** One pre-LN encoder layer: x + attn(LN1(x)), then + mlp(LN2(·)). x [B, S, H] → [B, S, H] */
function encoderLayer(ctx: NetContext, cfg: ClipTextConfig, x: Value, i: number, mask: Value): Value {
  const g = ctx.g;
  const p = `text_model.encoder.layers.${i}`;
  return g.scoped(`layer${i}`, () => {
    const h1 = layerNorm(ctx, x, `${p}.layer_norm1`, cfg.layerNormEps);
    const q = linear(ctx, h1, `${p}.self_attn.q_proj`); // [B, S, H]
    const k = linear(ctx, h1, `${p}.self_attn.k_proj`); // [B, S, H]
    const v = linear(ctx, h1, `${p}.self_attn.v_proj`); // [B, S, H]
    // causal self-attention; scale 1/sqrt(head dim) is MultiHeadAttention's default. Inputs: q, k, v, bias,
    // key_padding_mask, attention_bias
    const a = g.op('MultiHeadAttention', [q, k, v, '', '', mask], { num_heads: cfg.numHeads }, { domain: MS_DOMAIN }); // [B, S, H]
    const x1 = g.op('Add', [x, linear(ctx, a, `${p}.self_attn.out_proj`)]);
    const h2 = layerNorm(ctx, x1, `${p}.layer_norm2`, cfg.layerNormEps);
    const f = linear(ctx, h2, `${p}.mlp.fc1`); // [B, S, I]
    const act = cfg.act === 'quick_gelu' ? quickGelu(g, f) : gelu(g, f);
    return g.op('Add', [x1, linear(ctx, act, `${p}.mlp.fc2`)]); // [B, S, H]
  });
}

/**
 * Token + position embeddings. ids [B, S] int64; ids < vocab gather the token table, ids ≥ vocab gather row
 * (id − vocab) of `extra` [E, H]. → [B, S, H]
 */
function embeddings(ctx: NetContext, cfg: ClipTextConfig, ids: Value, extra: Value): Value {
  const g = ctx.g;
  const V = cfg.vocabSize;
  const table = weight(ctx, 'text_model.embeddings.token_embedding.weight'); // [V, H]
  const vocabIdx = g.op('Min', [ids, g.constI64([V - 1], [])]); // [B, S]
  const extraIdx = g.op('Max', [g.op('Sub', [ids, g.constI64([V], [])]), g.constI64([0], [])]); // [B, S]
  const tok = g.op('Gather', [table, vocabIdx], { axis: 0 }); // [B, S, H]
  const ext = g.op('Gather', [extra, extraIdx], { axis: 0 }); // [B, S, H]
  const isExtra = g.op('Unsqueeze', [g.op('GreaterOrEqual', [ids, g.constI64([V], [])]), g.constI64([2])]); // [B, S, 1]
  const x = g.op('Where', [isExtra, ext, tok]); // [B, S, H]
  // the sequence is always maxPositions long: position ids = 0..S−1 cover the whole table
  return g.op('Add', [x, weight(ctx, 'text_model.embeddings.position_embedding.weight')]); // [B, S, H] + [S, H]
}

/** Builds the graph of one SDXL text encoder; LoRA branches on q/k/v/out_proj/fc1/fc2 of every layer when `lora`. */
export function buildClipTextGraph(model: SdxlModel, which: TextEncoderName, opts: { lora?: boolean } = {}): BuiltNetwork {
  const cfg = model.config[which];
  const weights = model.weights[which];
  const label = LABEL[which];
  if (cfg.numLayers < 1) throw new AtelierError('CHECKPOINT_INVALID', `${label}: ${cfg.numLayers} layers`);
  const g = new GraphBuilder(label);
  const ctx = newContext(g, weights, label, opts.lora ?? false);
  const S = cfg.maxPositions;
  const H = cfg.hiddenSize;
  const ids = g.input(CLIP_IO.inputIds, 'int64', ['batch', S]);
  const extra = g.input(CLIP_IO.extraEmbeddings, 'float32', ['extra', H]);

  let x = embeddings(ctx, cfg, ids, extra); // [B, S, H]
  const mask = causalBias(g, S);
  let penultimate = x; // hidden_states[-2]: the input of the last layer
  for (let i = 0; i < cfg.numLayers; i++) {
    if (i === cfg.numLayers - 1) penultimate = x;
    x = encoderLayer(ctx, cfg, x, i, mask);
  }
  const last = layerNorm(ctx, x, 'text_model.final_layer_norm', cfg.layerNormEps); // [B, S, H]

  // pooled = final-LN state at the first position of the largest id (EOS; a TI token id when present)
  const eos = g.op('ArgMax', [ids], { axis: 1, keepdims: 1, select_last_index: 0 }); // [B, 1]
  const pooled = g.op('GatherND', [last, eos], { batch_dims: 1 }); // [B, H]

  g.output(penultimate, CLIP_IO.penultimate, 'float32', ['batch', S, H]);
  g.output(last, CLIP_IO.lastHidden, 'float32', ['batch', S, H]);
  g.output(pooled, CLIP_IO.pooled, 'float32', ['batch', H]);
  if (which === 'textEncoder2') {
    const proj = cfg.projectionDim ?? H;
    const embeds = linear(ctx, pooled, 'text_projection', { bias: false, lora: false }); // [B, proj]
    g.output(embeds, CLIP_IO.textEmbeds, 'float32', ['batch', proj]);
  }
  return { graph: g, weights, loraSlots: ctx.loraSlots, label };
}

export interface EncodeResult {
  /** hidden_states[-2] [B, 77, H] */
  penultimate: Float32Array;
  /** after final_layer_norm [B, 77, H] */
  lastHidden: Float32Array;
  /** text_encoder: pooler_output [B, H]; text_encoder_2: text_embeds [B, proj] */
  pooled: Float32Array;
}

/** A text encoder session (one per encoder, kept warm; one session serves every batch size). */
export class TextEncoder {
  readonly which: TextEncoderName;
  readonly hiddenSize: number;
  readonly vocabSize: number;
  readonly sequenceLength: number;
  /** width of `pooled`: hidden size (text_encoder) or projection dim (text_encoder_2) */
  readonly pooledSize: number;
  readonly loraSlots: readonly LoraSlot[];
  private readonly net: NetworkSession;

  private constructor(net: NetworkSession, which: TextEncoderName, cfg: ClipTextConfig) {
    this.net = net;
    this.which = which;
    this.hiddenSize = cfg.hiddenSize;
    this.vocabSize = cfg.vocabSize;
    this.sequenceLength = cfg.maxPositions;
    this.pooledSize = which === 'textEncoder2' ? (cfg.projectionDim ?? cfg.hiddenSize) : cfg.hiddenSize;
    this.loraSlots = net.loraSlots;
  }

  /** `lora: true` adds LoRA inputs to every attention/MLP Linear (default false: no adapter branches). */
  static async create(model: SdxlModel, which: TextEncoderName, settings: SessionSettings & { lora?: boolean } = {}): Promise<TextEncoder> {
    const { lora, ...session } = settings;
    const built = buildClipTextGraph(model, which, { lora: lora ?? false });
    return new TextEncoder(await NetworkSession.create(built, session), which, model.config[which]);
  }

  /** ids [batch·77] int64; extraEmbeddings [E·hidden] rows for ids vocabSize, vocabSize+1, … */
  async encode(ids: BigInt64Array, batch: number, opts: { extraEmbeddings?: Float32Array; lora?: Record<string, TensorIn> } = {}): Promise<EncodeResult> {
    const S = this.sequenceLength;
    const H = this.hiddenSize;
    if (!Number.isInteger(batch) || batch < 1 || ids.length !== batch * S) {
      throw new AtelierError('INVALID_INPUT', `${this.which}: ${ids.length} token ids for batch ${batch}; expected ${batch}×${S}`);
    }
    const extra = opts.extraEmbeddings && opts.extraEmbeddings.length > 0 ? opts.extraEmbeddings : new Float32Array(H);
    if (extra.length % H !== 0) {
      throw new AtelierError('INVALID_INPUT', `${this.which}: extra embeddings of ${extra.length} values are not rows of ${H}`);
    }
    const rows = opts.extraEmbeddings && opts.extraEmbeddings.length > 0 ? extra.length / H : 0;
    const limit = BigInt(this.vocabSize + rows);
    for (const id of ids) {
      if (id < 0n || id >= limit) {
        throw new AtelierError('INVALID_INPUT', `${this.which}: token id ${id} outside [0, ${limit}) (vocabulary ${this.vocabSize} + ${rows} embedding rows)`);
      }
    }
    const out = await this.net.run(
      {
        [CLIP_IO.inputIds]: { data: ids, dims: [batch, S] },
        [CLIP_IO.extraEmbeddings]: { data: extra, dims: [extra.length / H, H] },
      },
      opts.lora,
    );
    const pooledName = this.which === 'textEncoder2' ? CLIP_IO.textEmbeds : CLIP_IO.pooled;
    return {
      penultimate: out[CLIP_IO.penultimate].data as Float32Array,
      lastHidden: out[CLIP_IO.lastHidden].data as Float32Array,
      pooled: out[pooledName].data as Float32Array,
    };
  }

  async release(): Promise<void> {
    await this.net.release();
  }
}

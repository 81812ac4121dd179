/**
 * What adapters/ needs from a loaded model, and what it hands back: declared here so that adapters/ imports only
 * downward (networks, weights, tokenizer). The engine's LoadedModel satisfies AdapterTarget; the pipeline (one
 * layer above) takes AdapterFeeds as they are.
 */
import type { LoraSlot } from '../networks/blocks.ts';
import type { ClipTokenizer } from '../tokenizer/clip-bpe.ts';
import type { ClipTextConfig, UNetConfig } from '../weights/types.ts';

type TextConfig = Pick<ClipTextConfig, 'hiddenSize' | 'vocabSize'>;

/** The networks (their LoRA slots), the configuration and the tokenizers of one loaded model. */
export interface AdapterTarget {
  model: { config: { unet: UNetConfig; textEncoder1: TextConfig; textEncoder2: TextConfig } };
  unet: { readonly loraSlots: readonly LoraSlot[] };
  textEncoders: readonly [{ readonly loraSlots: readonly LoraSlot[] }, { readonly loraSlots: readonly LoraSlot[] }];
  tokenizers: readonly [ClipTokenizer, ClipTokenizer];
}

/** LoRA factors per network input name (`lora.<slot>.down` …), as the networks take them. */
export type { LoraFeeds as NetworkLoraFeeds } from '../networks/runtime.ts';
import type { LoraFeeds as NetworkLoraFeeds } from '../networks/runtime.ts';

/** Per-request adapters turned into network feeds. */
export interface AdapterFeeds {
  textEncoder1?: NetworkLoraFeeds;
  textEncoder2?: NetworkLoraFeeds;
  unet?: NetworkLoraFeeds;
  /** textual-inversion rows per text encoder ([E, hidden]); undefined = none */
  extraEmbeddings?: [Float32Array | undefined, Float32Array | undefined];
  /** tokenizers with the request's textual-inversion tokens added */
  tokenizers?: [ClipTokenizer, ClipTokenizer];
  /** expands a one-token multi-vector embedding into its tokens */
  rewritePrompt?: (prompt: string) => string;
}

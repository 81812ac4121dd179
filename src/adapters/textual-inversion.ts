/**
 * Textual-inversion embeddings. SDXL files carry `clip_l` [n, 768] and `clip_g` [n, 1280] (one vector set per text
 * encoder); a file with a single tensor is accepted when its width matches exactly one encoder. The request's
 * `tokens` name the vectors in order (default `<s0>`, `<s1>`); a single token for an n-vector embedding expands to
 * n consecutive tokens, as AUTOMATIC1111 does.
 */
import { AtelierError } from '../contract/errors.ts';
import { readSafetensorsHeader, readTensorF32, tensorRefOf } from '../weights/safetensors.ts';

export interface ParsedEmbedding {
  file: string;
  /** vectors per encoder, [n, hidden]; undefined when the file has none for that encoder */
  perEncoder: [Float32Array | undefined, Float32Array | undefined];
  count: number;
}

export async function readEmbeddingFile(file: string, hidden: [number, number], field = 'embeddings'): Promise<ParsedEmbedding> {
  if (!/\.safetensors$/i.test(file)) {
    throw new AtelierError('ADAPTER_INVALID', `embedding "${file}" is not a .safetensors file; pickled .pt/.bin files are refused (loading them runs code)`, { field });
  }
  const header = await readSafetensorsHeader(file).catch((cause) => {
    throw new AtelierError('ADAPTER_INVALID', `embedding "${file}": ${(cause as Error).message}`, { field, cause });
  });
  const names = [...header.tensors.keys()];
  const matrix = async (name: string, width: number) => {
    const ref = tensorRefOf(header, name);
    const shape = ref.shape.length === 1 ? [1, ref.shape[0]] : ref.shape;
    if (shape.length !== 2 || shape[1] !== width) {
      throw new AtelierError('ADAPTER_INVALID', `embedding "${file}": tensor "${name}" has shape ${JSON.stringify(ref.shape)}, expected [n, ${width}]`, { field });
    }
    return { data: await readTensorF32(ref), n: shape[0] };
  };
  if (header.tensors.has('clip_l') || header.tensors.has('clip_g')) {
    const l = header.tensors.has('clip_l') ? await matrix('clip_l', hidden[0]) : undefined;
    const g = header.tensors.has('clip_g') ? await matrix('clip_g', hidden[1]) : undefined;
    if (l && g && l.n !== g.n) {
      throw new AtelierError('ADAPTER_INVALID', `embedding "${file}": clip_l has ${l.n} vectors but clip_g has ${g.n}`, { field });
    }
    return { file, perEncoder: [l?.data, g?.data], count: (l ?? g)!.n };
  }
  if (names.length === 1) {
    const ref = tensorRefOf(header, names[0]);
    const width = ref.shape[ref.shape.length - 1];
    const which = hidden.indexOf(width);
    if (which >= 0 && hidden[0] !== hidden[1]) {
      const m = await matrix(names[0], width);
      return { file, perEncoder: which === 0 ? [m.data, undefined] : [undefined, m.data], count: m.n };
    }
  }
  throw new AtelierError(
    'ADAPTER_INVALID',
    `"${file}" is not an SDXL embedding: expected tensors clip_l [n, ${hidden[0]}] and clip_g [n, ${hidden[1]}] (or one tensor of either width), found ${names.slice(0, 5).join(', ')}`,
    { field },
  );
}

/** Token strings bound to an embedding's vectors: one per vector, or one token expanded to n. */
export function tokensFor(emb: ParsedEmbedding, tokens: readonly string[], field = 'embeddings'): { tokens: string[]; expand?: { from: string; to: string[] } } {
  if (tokens.length === emb.count) return { tokens: [...tokens] };
  if (tokens.length === 1) {
    const many = Array.from({ length: emb.count }, (_, i) => (i === 0 ? tokens[0] : `${tokens[0]}#${i}`));
    return { tokens: many, expand: { from: tokens[0], to: many } };
  }
  throw new AtelierError('INVALID_INPUT', `embedding "${emb.file}" has ${emb.count} vectors but ${tokens.length} tokens were given (${JSON.stringify(tokens)}); give ${emb.count} tokens or one`, { field });
}

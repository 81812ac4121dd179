/**
 * Model rows for CLIP's fixed 77-position window.
 *
 * 'truncate' is transformers' `tokenizer(text, padding="max_length", max_length=77, truncation=True)`: the text's ids
 * are cut to 75, then wrapped as [BOS, ids…, EOS] and padded with the pad id, so EOS stays at index 76 when truncated.
 *
 * 'chunk' keeps every token of long prompts, as AUTOMATIC1111 (`modules/sd_hijack_clip.py`, `tokenize_line`) and
 * ComfyUI do: the ids are cut into chunks of 75, each wrapped as [BOS, chunk…, EOS, pad…]; the text encoder runs on
 * each row and the hidden states are concatenated along the sequence, while the pooled embedding (SDXL's
 * text_embeds) is taken from the FIRST chunk only. A prompt that fits gives exactly the 'truncate' row.
 * A1111 additionally backtracks to a comma (setting comma_padding_backtrack, default 20): when a chunk is full and a
 * non-comma token arrives, and the chunk's last comma is at most 20 tokens from its end, the tokens after that comma
 * move to the next chunk and the current one is padded instead. That is available here as `commaBacktrack` (default
 * 0 = plain 75-token chunks, what ComfyUI and diffusers/compel users see). A1111 pads chunks with EOS for CLIP-L and
 * with 0 after the first EOS for OpenCLIP-G, which equals our per-tokenizer pad id for SDXL (EOS resp. "!" = 0).
 * Not reproduced: A1111's keeping of a multi-vector embedding inside one chunk, and its BREAK keyword.
 */

export interface ChunkOptions {
  /** window length including BOS/EOS (77 for CLIP) */
  maxLength: number;
  bos: number;
  eos: number;
  pad: number;
  /** id of ",</w>" (undefined when the vocabulary has none: backtracking is then off) */
  comma?: number;
  /** A1111's comma_padding_backtrack; 0 = off */
  commaBacktrack?: number;
}

/** One row: [BOS, ids (at most maxLength − 2)…, EOS, pad…] of length maxLength. */
export function wrapRow(ids: readonly number[], o: Pick<ChunkOptions, 'maxLength' | 'bos' | 'eos' | 'pad'>): number[] {
  const body = ids.slice(0, o.maxLength - 2);
  const row = [o.bos, ...body, o.eos];
  while (row.length < o.maxLength) row.push(o.pad);
  return row;
}

/** Split ids into chunks of at most maxLength − 2 (with A1111's optional comma backtracking); at least one chunk. */
export function chunkIds(ids: readonly number[], o: ChunkOptions): number[][] {
  const size = o.maxLength - 2;
  const backtrack = o.comma === undefined ? 0 : (o.commaBacktrack ?? 0);
  const chunks: number[][] = [];
  let chunk: number[] = [];
  let lastComma = -1;
  const close = (): void => {
    chunks.push(chunk);
    chunk = [];
    lastComma = -1;
  };
  for (const id of ids) {
    if (id === o.comma) {
      lastComma = chunk.length;
    } else if (backtrack > 0 && chunk.length === size && lastComma !== -1 && chunk.length - lastComma <= backtrack) {
      const moved = chunk.slice(lastComma + 1);
      chunk = chunk.slice(0, lastComma + 1);
      close();
      chunk = moved;
    }
    if (chunk.length === size) close();
    chunk.push(id);
  }
  if (chunk.length > 0 || chunks.length === 0) close();
  return chunks;
}

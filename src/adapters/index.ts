/**
 * Per-request adapters → network feeds. Parsed files are cached (by path, size and mtime); the slot table is
 * built once per loaded model. Nothing here touches the sessions: switching adapters costs only feeds.
 * The model comes in as an AdapterTarget and the feeds go out as AdapterFeeds (./target.ts): adapters/ knows
 * neither the engine nor the pipeline.
 */
import fs from 'node:fs/promises';
import { AtelierError } from '../contract/errors.ts';
import type { GenerateRequest } from '../contract/types.ts';
import { invertTable, mapByLongestPrefix } from '../weights/layouts/key-map.ts';
import { sgmUnetTable } from '../weights/layouts/single-file.ts';
import type { UNetConfig } from '../weights/types.ts';
import { buildSlotTable, loraFeeds, readLoraFile, type ParsedLora, type SlotTable } from './lora.ts';
import type { AdapterFeeds, AdapterTarget } from './target.ts';
import { readEmbeddingFile, tokensFor, type ParsedEmbedding } from './textual-inversion.ts';

export type { AdapterFeeds, AdapterTarget } from './target.ts';

const MAX_CACHED_FILES = 32;
/** parsed factors are float32: bound the cache by their bytes too (full-size SDXL LoRAs hold hundreds of MB) */
const MAX_CACHED_BYTES = 2 * 1024 ** 3;
const fileCache = new Map<string, { value: Promise<ParsedLora | ParsedEmbedding>; bytes: number }>();
const slotTables = new WeakMap<AdapterTarget, SlotTable>();

function parsedBytes(v: ParsedLora | ParsedEmbedding): number {
  if ('modules' in v) {
    let n = 0;
    for (const f of v.modules.values()) n += f.down.byteLength + f.up.byteLength;
    return n;
  }
  return (v.perEncoder[0]?.byteLength ?? 0) + (v.perEncoder[1]?.byteLength ?? 0);
}

function evict(): void {
  let total = 0;
  for (const e of fileCache.values()) total += e.bytes;
  while (fileCache.size > 0 && (fileCache.size > MAX_CACHED_FILES || total > MAX_CACHED_BYTES)) {
    const oldest = fileCache.keys().next().value as string;
    total -= fileCache.get(oldest)!.bytes;
    fileCache.delete(oldest);
  }
}

/** Parsed files cached by what was parsed (kind, and for embeddings the model's widths), path, size and mtime. */
async function cached<T extends ParsedLora | ParsedEmbedding>(kind: string, file: string, load: () => Promise<T>): Promise<T> {
  const st = await fs.stat(file).catch(() => null);
  const key = `${kind}\u0000${file}\u0000${st?.size}:${st?.mtimeMs}`;
  let e = fileCache.get(key);
  if (e) {
    fileCache.delete(key); // most recently used last
    fileCache.set(key, e);
  } else {
    const entry = { value: load() as Promise<ParsedLora | ParsedEmbedding>, bytes: 0 };
    e = entry;
    fileCache.set(key, entry);
    entry.value.then(
      (v) => {
        entry.bytes = parsedBytes(v);
        evict();
      },
      () => {
        if (fileCache.get(key) === entry) fileCache.delete(key);
      },
    );
    evict();
  }
  return e.value as Promise<T>;
}

/** diffusers UNet module → SGM (single-file) module, for kohya names like `lora_unet_input_blocks_4_1_…`. */
export function sgmNamer(cfg: UNetConfig): (module: string) => string | undefined {
  const levels = cfg.blockOutChannels.length;
  const table = invertTable(
    sgmUnetTable({
      levels,
      layersPerBlock: cfg.layersPerBlock,
      downAttention: cfg.transformerLayersPerBlock.map((d) => d > 0),
      upAttention: [...cfg.transformerLayersPerBlock].reverse().map((d) => d > 0),
    }),
  );
  return (module) => mapByLongestPrefix(module, table);
}

function slotTableFor(m: AdapterTarget): SlotTable {
  let t = slotTables.get(m);
  if (!t) {
    t = buildSlotTable(
      { unet: m.unet.loraSlots, textEncoder1: m.textEncoders[0].loraSlots, textEncoder2: m.textEncoders[1].loraSlots },
      sgmNamer(m.model.config.unet),
    );
    slotTables.set(m, t);
  }
  return t;
}

/** The request's LoRAs and embeddings (already local files) as feeds for `m`'s networks; what was not applied goes to `log`. */
export async function prepareAdapters(
  m: AdapterTarget,
  req: Pick<GenerateRequest, 'loras' | 'embeddings'>,
  log: (line: string) => void,
): Promise<AdapterFeeds> {
  const out: AdapterFeeds = {};
  if (req.loras.length > 0) {
    const applied = [];
    for (let i = 0; i < req.loras.length; i++) {
      const spec = req.loras[i];
      const lora = await cached('lora', spec.file, () => readLoraFile(spec.file, `loras[${i}].path`));
      if (lora.unsupported.length > 0) {
        const kinds = lora.unsupportedKinds.length > 0 ? ` (${lora.unsupportedKinds.join('/')} modules are not supported)` : '';
        log(`LoRA ${spec.file}: ${lora.unsupported.length} keys not applied${kinds}: ${lora.unsupported.slice(0, 10).join(', ')}${lora.unsupported.length > 10 ? ' …' : ''}`);
      }
      applied.push({ lora, scale: spec.scale });
    }
    const { feeds, unmatched, matched } = loraFeeds(slotTableFor(m), applied);
    log(`LoRA: ${matched} modules applied from ${req.loras.length} file(s)`);
    if (unmatched.length > 0) log(`LoRA: ${unmatched.length} modules match nothing in this model and were not applied: ${unmatched.slice(0, 10).join('; ')}${unmatched.length > 10 ? ' …' : ''}`);
    out.unet = feeds.unet;
    out.textEncoder1 = feeds.textEncoder1;
    out.textEncoder2 = feeds.textEncoder2;
  }
  if (req.embeddings.length > 0) {
    const hidden: [number, number] = [m.model.config.textEncoder1.hiddenSize, m.model.config.textEncoder2.hiddenSize];
    const tokens: [string[], string[]] = [[], []];
    const rows: [Float32Array[], Float32Array[]] = [[], []];
    const expansions: { from: string; to: string[] }[] = [];
    for (let i = 0; i < req.embeddings.length; i++) {
      const spec = req.embeddings[i];
      const emb = await cached(`embedding:${hidden.join(',')}`, spec.file, () => readEmbeddingFile(spec.file, hidden, `embeddings[${i}].path`));
      const bound = tokensFor(emb, spec.tokens, `embeddings[${i}].tokens`);
      if (bound.expand) expansions.push(bound.expand);
      for (const e of [0, 1] as const) {
        const vectors = emb.perEncoder[e];
        if (!vectors) continue;
        tokens[e].push(...bound.tokens);
        rows[e].push(vectors);
      }
      log(`embedding ${spec.file}: ${emb.count} vector(s) bound to ${bound.tokens.join(' ')}`);
    }
    const vocab = [m.model.config.textEncoder1.vocabSize, m.model.config.textEncoder2.vocabSize];
    const [a1, a2] = ([0, 1] as const).map((e) => {
      const base = m.tokenizers[e];
      if (tokens[e].length === 0) return base;
      const { tokenizer, ids } = base.withAddedTokens(tokens[e]);
      // the encoder reads row (id − vocabSize) of its extra embeddings: the new ids must follow the model's table
      if (ids.some((id, k) => id !== vocab[e] + k)) {
        throw new AtelierError('ADAPTER_INVALID', `text encoder ${e + 1}: embedding tokens got ids ${ids.join(', ')} but the model's vocabulary has ${vocab[e]} rows; tokenizer and model disagree`, { field: 'embeddings' });
      }
      return tokenizer;
    });
    out.tokenizers = [a1, a2];
    out.extraEmbeddings = [rows[0].length ? concatRows(rows[0]) : undefined, rows[1].length ? concatRows(rows[1]) : undefined];
    if (expansions.length) {
      out.rewritePrompt = (p: string) => expansions.reduce((s, x) => s.split(x.from).join(x.to.join(' ')), p);
    }
  }
  return out;
}

function concatRows(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

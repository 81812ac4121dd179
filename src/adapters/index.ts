/**
 * Per-request adapters → network feeds. Parsed files are cached (by path, size and mtime); the slot table is
 * built once per loaded model. Nothing here touches the sessions: switching adapters costs only feeds.
 */
import fs from 'node:fs/promises';
import type { GenerateRequest } from '../engine/types.ts';
import type { AdapterFeeds } from '../pipeline/generate.ts';
import type { LoadedModel } from '../engine/model-manager.ts';
import { invertTable, mapByLongestPrefix } from '../weights/layouts/key-map.ts';
import { sgmUnetTable } from '../weights/layouts/single-file.ts';
import type { UNetConfig } from '../weights/types.ts';
import { buildSlotTable, loraFeeds, readLoraFile, type ParsedLora, type SlotTable } from './lora.ts';
import { readEmbeddingFile, tokensFor, type ParsedEmbedding } from './textual-inversion.ts';

const MAX_CACHED_FILES = 32;
const fileCache = new Map<string, Promise<ParsedLora | ParsedEmbedding>>();
const slotTables = new WeakMap<LoadedModel, SlotTable>();

async function cached<T extends ParsedLora | ParsedEmbedding>(file: string, load: () => Promise<T>): Promise<T> {
  const st = await fs.stat(file).catch(() => null);
  const key = `${file}:${st?.size}:${st?.mtimeMs}`;
  let p = fileCache.get(key);
  if (!p) {
    p = load();
    p.catch(() => fileCache.delete(key));
    fileCache.set(key, p);
    while (fileCache.size > MAX_CACHED_FILES) fileCache.delete(fileCache.keys().next().value as string);
  }
  return p as Promise<T>;
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

function slotTableFor(m: LoadedModel): SlotTable {
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

export async function prepareAdapters(m: LoadedModel, req: GenerateRequest, log: (line: string) => void): Promise<AdapterFeeds> {
  const out: AdapterFeeds = {};
  if (req.loras.length > 0) {
    const applied = [];
    for (let i = 0; i < req.loras.length; i++) {
      const spec = req.loras[i];
      const lora = await cached(spec.file, () => readLoraFile(spec.file, `loras[${i}].path`));
      if (lora.unsupported.length > 0) log(`LoRA ${spec.file}: ${lora.unsupported.length} keys of unsupported kinds ignored (e.g. ${lora.unsupported.slice(0, 3).join(', ')})`);
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
      const emb = await cached(spec.file, () => readEmbeddingFile(spec.file, hidden, `embeddings[${i}].path`));
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
    const [t1, t2] = m.tokenizers;
    const a1 = tokens[0].length ? t1.withAddedTokens(tokens[0]).tokenizer : t1;
    const a2 = tokens[1].length ? t2.withAddedTokens(tokens[1]).tokenizer : t2;
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

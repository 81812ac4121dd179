/** The stages of a parity run: which recorded inputs feed which network, and which outputs are compared. */
import path from 'node:path';
import fs from 'node:fs/promises';
import { TextEncoder } from '../networks/clip-text.ts';
import { UNet } from '../networks/unet.ts';
import { VaeDecoder, VaeEncoder } from '../networks/vae.ts';
import { ClipTokenizer } from '../tokenizer/clip-bpe.ts';
import { maxAbsErr, type TraceFile } from '../weights/trace.ts';
import type { SdxlModel } from '../weights/types.ts';
import { readEmbeddingFile } from '../adapters/textual-inversion.ts';
import { buildSlotTable, loraFeeds, readLoraFile } from '../adapters/lora.ts';
import { sgmNamer } from '../adapters/index.ts';
import { parseLoraFlag } from './generate.ts';

export interface StageResult {
  stage: string;
  max_abs_err: number;
  exact?: boolean;
}

type Lora = Record<string, { data: Float32Array; dims: number[] }>;


export async function* runParity(
  model: SdxlModel,
  trace: TraceFile,
  opts: { traceFile: string; embedding?: string; lora?: string },
): AsyncGenerator<StageResult> {
  const SETTINGS = { threads: 2, lora: !!opts.lora };
  const te = [await TextEncoder.create(model, 'textEncoder1', SETTINGS), await TextEncoder.create(model, 'textEncoder2', SETTINGS)] as const;
  const unet = await UNet.create(model, SETTINGS);
  const vaeEnc = await VaeEncoder.create(model, SETTINGS);
  const vaeDec = await VaeDecoder.create(model, SETTINGS);
  try {
    let extra: [Float32Array | undefined, Float32Array | undefined] = [undefined, undefined];
    if (opts.embedding) {
      const emb = await readEmbeddingFile(path.resolve(opts.embedding), [model.config.textEncoder1.hiddenSize, model.config.textEncoder2.hiddenSize]);
      extra = emb.perEncoder;
    }
    let lora: { unet: Lora; textEncoder1: Lora; textEncoder2: Lora } | undefined;
    if (opts.lora) {
      const spec = parseLoraFlag(opts.lora);
      const parsed = await readLoraFile(spec.file);
      const table = buildSlotTable({ unet: unet.loraSlots, textEncoder1: te[0].loraSlots, textEncoder2: te[1].loraSlots }, sgmNamer(model.config.unet));
      lora = loraFeeds(table, [{ lora: parsed, scale: spec.scale }]).feeds;
    }
    const teLora = [lora?.textEncoder1, lora?.textEncoder2] as const;

    // Tokenizers (components fixture: prompts in the json beside it)
    if (trace.has('tokenizer/input_ids') && model.tokenizers) {
      const json = JSON.parse(await fs.readFile(opts.traceFile.replace(/\.safetensors$/, '.json'), 'utf8'));
      const prompts: string[] = Array.isArray(json.prompts) ? json.prompts : parsePythonStrings(String(json.prompts ?? ''));
      if (prompts.length > 0) {
        const toks = [
          await ClipTokenizer.fromFolder(path.dirname(model.tokenizers.tokenizer1.vocabJson)),
          await ClipTokenizer.fromFolder(path.dirname(model.tokenizers.tokenizer2.vocabJson)),
        ];
        for (const [i, name] of ['tokenizer', 'tokenizer_2'].entries()) {
          const ids = Array.from(prompts.flatMap((p) => toks[i].tokenizeForModel(p, { long: 'truncate' })[0]), Number);
          const want = Array.from(await trace.i64(`${name}/input_ids`), Number);
          yield { stage: `${name}/input_ids`, max_abs_err: maxAbsErr(ids, want), exact: true };
        }
      }
    }

    // Text encoders: components (`text_encoder/…` from `tokenizer/input_ids`) and traces (`text_encoder/prompt/…`)
    const groups: { prefix: string; ids: string }[] = [];
    if (trace.has('tokenizer/input_ids')) groups.push({ prefix: '', ids: 'input_ids' });
    for (const g of ['prompt', 'negative']) if (trace.has(`text_encoder/${g}/input_ids`)) groups.push({ prefix: `${g}/`, ids: `${g}/input_ids` });
    for (const g of groups) {
      for (const [i, name] of (['text_encoder', 'text_encoder_2'] as const).entries()) {
        const idsName = g.prefix === '' ? `${i === 0 ? 'tokenizer' : 'tokenizer_2'}/input_ids` : `${name}/${g.ids}`;
        const ids = await trace.i64(idsName);
        const batch = ids.length / 77;
        const r = await te[i].encode(ids, batch, { extraEmbeddings: extra[i], lora: teLora[i] });
        const checks: [string, Float32Array][] = [
          ['hidden_states_penultimate', r.penultimate],
          ['last_hidden_state', r.lastHidden],
          [i === 0 ? 'pooler_output' : 'text_embeds', r.pooled],
        ];
        for (const [k, got] of checks) {
          const stage = `${name}/${g.prefix}${k}`;
          if (trace.has(stage)) yield { stage, max_abs_err: maxAbsErr(got, await trace.f32(stage)) };
        }
      }
    }

    // UNet: components (`unet/8x8/…`) and the first step of a trace
    for (const size of ['8x8', '8x12']) {
      const p = `unet/${size}`;
      if (!trace.has(`${p}/sample`)) continue;
      const [b, , h, w] = trace.shape(`${p}/sample`);
      const t = await trace.f32(`${p}/timestep`);
      const ehs = await trace.f32(`${p}/encoder_hidden_states`);
      const out = await unet.run(
        {
          sample: await trace.f32(`${p}/sample`),
          batch: b,
          height: h,
          width: w,
          timestep: t.length === b ? t : new Float32Array(b).fill(t[0]),
          encoderHiddenStates: ehs,
          seqLen: ehs.length / b / trace.shape(`${p}/encoder_hidden_states`)[2],
          textEmbeds: await trace.f32(`${p}/text_embeds`),
          timeIds: await trace.f32(`${p}/time_ids`),
        },
        lora?.unet,
      );
      yield { stage: `${p}/out`, max_abs_err: maxAbsErr(out, await trace.f32(`${p}/out`)) };
    }
    if (trace.has('step00/latent_model_input') && trace.has('unet_cond/encoder_hidden_states')) {
      const [b, , h, w] = trace.shape('step00/latent_model_input');
      const ehsShape = trace.shape('unet_cond/encoder_hidden_states');
      const t = await trace.f32('step00/timestep');
      const out = await unet.run(
        {
          sample: await trace.f32('step00/latent_model_input'),
          batch: b,
          height: h,
          width: w,
          timestep: new Float32Array(b).fill(t[0]),
          encoderHiddenStates: await trace.f32('unet_cond/encoder_hidden_states'),
          seqLen: ehsShape[1],
          textEmbeds: await trace.f32('unet_cond/text_embeds'),
          timeIds: await trace.f32('unet_cond/time_ids'),
        },
        lora?.unet,
      );
      yield { stage: 'step00/noise_pred_raw', max_abs_err: maxAbsErr(out, await trace.f32('step00/noise_pred_raw')) };
    }

    // VAE encoder
    const encodes: { input: string; mean: string; logvar: string; std?: string }[] = [];
    for (const size of ['64x64', '32x48']) {
      const p = `vae_encode/${size}`;
      if (trace.has(`${p}/image`)) encodes.push({ input: `${p}/image`, mean: `${p}/mean`, logvar: `${p}/logvar`, std: `${p}/std` });
    }
    if (trace.has('vae/encode_input')) encodes.push({ input: 'vae/encode_input', mean: 'vae/posterior_mean', logvar: 'vae/posterior_logvar', std: 'vae/posterior_std' });
    for (const e of encodes) {
      const [b, , H, W] = trace.shape(e.input);
      const r = await vaeEnc.encode(await trace.f32(e.input), b, H, W);
      yield { stage: e.mean, max_abs_err: maxAbsErr(r.mean, await trace.f32(e.mean)) };
      yield { stage: e.logvar, max_abs_err: maxAbsErr(r.logvar, await trace.f32(e.logvar)) };
      if (e.std && trace.has(e.std)) yield { stage: e.std, max_abs_err: maxAbsErr(r.std, await trace.f32(e.std)) };
    }

    // VAE decoder
    const decodes: { z: string; out: string }[] = [];
    for (const size of ['8x8', '8x12']) if (trace.has(`vae_decode/${size}/z`)) decodes.push({ z: `vae_decode/${size}/z`, out: `vae_decode/${size}/out` });
    if (trace.has('vae/decode_input')) decodes.push({ z: 'vae/decode_input', out: 'vae/decode_output' });
    for (const d of decodes) {
      const [b, , h, w] = trace.shape(d.z);
      const out = await vaeDec.decode(await trace.f32(d.z), b, h, w);
      yield { stage: d.out, max_abs_err: maxAbsErr(out, await trace.f32(d.out)) };
    }
  } finally {
    await Promise.all([te[0].release(), te[1].release(), unet.release(), vaeEnc.release(), vaeDec.release()]);
  }
}

/** The fixtures' json writes some lists as Python reprs: `['a', "b's"]` → ['a', "b's"]. */
export function parsePythonStrings(repr: string): string[] {
  const out: string[] = [];
  const re = /'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"/g;
  for (const m of repr.matchAll(re)) {
    const body = m[1] ?? m[2];
    out.push(body.replace(/\\(.)/g, (_, c: string) => ({ n: '\n', t: '\t' })[c as 'n' | 't'] ?? c));
  }
  return out;
}

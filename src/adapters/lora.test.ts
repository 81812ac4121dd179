/**
 * LoRA at network level on the tiny oracle SDXL: the four oracle files reproduce the traced text-encoder states and
 * step-00 UNet output; stacked adapters equal their deltas merged into plain weights (text encoders: kohya + PEFT;
 * UNet: PEFT + a generated LyCORIS LoCon with a CP core); adapters switch on one session without leaking state.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TextEncoder } from '../networks/clip-text.ts';
import { UNet, type UNetInputs } from '../networks/unet.ts';
import type { TensorIn } from '../onnx/session.ts';
import { loadModel } from '../weights/load-model.ts';
import { TraceFile } from '../weights/trace.ts';
import type { SdxlModel } from '../weights/types.ts';
import { sgmNamer } from './index.ts';
import { buildSlotTable, loraFeeds, readLoraFile, type AppliedLora, type ParsedLora, type SlotTable } from './lora.ts';
import { addLowRank, LORA_FILES, loraPath, maxAbs, ORACLE, readAllF32, removeTmp, seeded, tmpDir, writeF32, writeModelCopy } from './test-support.ts';

const TOL = 1e-4;
const MERGE_TOL = 1e-5;
const SETTINGS = { threads: 2 };
const TRACE_OF: Record<string, string> = {
  kohya_lora: 'lora_kohya_img2img_trace',
  peft_lora: 'lora_peft_img2img_trace',
  diffusers_lora: 'lora_peft_img2img_trace',
  kohya_diffusers_names_lora: 'lora_peft_img2img_trace',
};

let tmp: string;
let model: SdxlModel;
let te: [TextEncoder, TextEncoder];
let unet: UNet;
let table: SlotTable;
const parsed = new Map<string, ParsedLora>();
const traces = new Map<string, TraceFile>();

async function trace(name: string): Promise<TraceFile> {
  let t = traces.get(name);
  if (!t) traces.set(name, (t = await TraceFile.open(path.join(ORACLE, `${name}.safetensors`))));
  return t;
}

/** Prompt and negative token ids of a trace as one batch of 2 ([prompt, negative]). */
async function traceIds(t: TraceFile, encoder: 'text_encoder' | 'text_encoder_2'): Promise<BigInt64Array> {
  const p = await t.i64(`${encoder}/prompt/input_ids`);
  const n = await t.i64(`${encoder}/negative/input_ids`);
  const ids = new BigInt64Array(p.length + n.length);
  ids.set(p, 0);
  ids.set(n, p.length);
  return ids;
}

async function traceUNetInputs(t: TraceFile): Promise<UNetInputs> {
  const sample = await t.f32('step00/latent_model_input');
  const ts = (await t.f32('step00/timestep'))[0];
  return {
    sample,
    batch: 2,
    height: 8,
    width: 8,
    timestep: new Float32Array([ts, ts]),
    encoderHiddenStates: await t.f32('unet_cond/encoder_hidden_states'),
    seqLen: 77,
    textEmbeds: await t.f32('unet_cond/text_embeds'),
    timeIds: await t.f32('unet_cond/time_ids'),
  };
}

const feedsOf = (applied: AppliedLora[]) => loraFeeds(table, applied);

before(async () => {
  tmp = tmpDir('lora');
  model = await loadModel(path.join(ORACLE, 'tiny-sdxl'), { cacheDir: path.join(tmp, 'cache') });
  te = [await TextEncoder.create(model, 'textEncoder1', { ...SETTINGS, lora: true }), await TextEncoder.create(model, 'textEncoder2', { ...SETTINGS, lora: true })];
  unet = await UNet.create(model, { ...SETTINGS, lora: true });
  table = buildSlotTable({ unet: unet.loraSlots, textEncoder1: te[0].loraSlots, textEncoder2: te[1].loraSlots }, sgmNamer(model.config.unet));
  for (const f of LORA_FILES) parsed.set(f, await readLoraFile(loraPath(f)));
});

after(async () => {
  await Promise.all([te?.[0]?.release(), te?.[1]?.release(), unet?.release()]);
  removeTmp(tmp);
});

describe('the four oracle LoRA files', () => {
  test('every module of every file lands on a slot of the model (350/350, none unmatched)', () => {
    for (const f of LORA_FILES) {
      const lora = parsed.get(f)!;
      assert.equal(lora.modules.size, 350, f);
      assert.deepEqual(lora.unsupported, [], `${f}: unsupported keys`);
      const { feeds, unmatched, matched } = feedsOf([{ lora, scale: 0.8 }]);
      assert.equal(matched, 350, f);
      assert.deepEqual(unmatched, [], f);
      // 302 UNet + 24 + 24 text-encoder modules, two feeds (down, up) each
      assert.deepEqual([feeds.unet, feeds.textEncoder1, feeds.textEncoder2].map((x) => Object.keys(x).length), [604, 48, 48], f);
    }
  });

  test('the two re-encodings give the same feeds as peft_lora', () => {
    const ref = feedsOf([{ lora: parsed.get('peft_lora')!, scale: 0.8 }]).feeds;
    for (const f of ['diffusers_lora', 'kohya_diffusers_names_lora']) {
      const got = feedsOf([{ lora: parsed.get(f)!, scale: 0.8 }]).feeds;
      let worst = 0;
      for (const target of ['unet', 'textEncoder1', 'textEncoder2'] as const) {
        assert.deepEqual(Object.keys(got[target]).sort(), Object.keys(ref[target]).sort(), `${f} ${target}`);
        for (const [name, v] of Object.entries(ref[target])) {
          assert.deepEqual(got[target][name].dims, v.dims, `${f} ${name}`);
          worst = Math.max(worst, maxAbs(got[target][name].data, v.data));
        }
      }
      console.log(`# ${f} vs peft_lora feeds: max abs diff ${worst}`);
      assert.ok(worst <= 1e-7, `${f}: feeds differ by ${worst}`);
    }
  });

  for (const f of LORA_FILES) {
    test(`${f} at 0.8 reproduces ${TRACE_OF[f]}: text encoders and step-00 UNet within ${TOL}`, async () => {
      const t = await trace(TRACE_OF[f]);
      const { feeds } = feedsOf([{ lora: parsed.get(f)!, scale: 0.8 }]);
      const errs: Record<string, number> = {};
      const cases = [
        [0, 'text_encoder', feeds.textEncoder1, 'pooler_output'],
        [1, 'text_encoder_2', feeds.textEncoder2, 'text_embeds'],
      ] as const;
      for (const [i, enc, lora, pooledName] of cases) {
        const out = await te[i].encode(await traceIds(t, enc), 2, { lora });
        const H = te[i].hiddenSize;
        const P = te[i].pooledSize;
        for (const [k, half] of [['prompt', 0], ['negative', 1]] as const) {
          const seq = 77 * H;
          errs[`${enc}/${k}/penultimate`] = maxAbs(out.penultimate.subarray(half * seq, (half + 1) * seq), await t.f32(`${enc}/${k}/hidden_states_penultimate`));
          errs[`${enc}/${k}/last_hidden`] = maxAbs(out.lastHidden.subarray(half * seq, (half + 1) * seq), await t.f32(`${enc}/${k}/last_hidden_state`));
          errs[`${enc}/${k}/${pooledName}`] = maxAbs(out.pooled.subarray(half * P, (half + 1) * P), await t.f32(`${enc}/${k}/${pooledName}`));
        }
      }
      const pred = await unet.run(await traceUNetInputs(t), feeds.unet);
      errs['step00/noise_pred_raw'] = maxAbs(pred, await t.f32('step00/noise_pred_raw'));
      console.log(`# ${f}: worst ${Math.max(...Object.values(errs)).toExponential(2)} ${JSON.stringify(errs)}`);
      for (const [k, e] of Object.entries(errs)) assert.ok(e <= TOL, `${f} ${k}: max abs error ${e}`);
    });
  }

  test('scale 0 equals no adapter; the adapter changes the output', async () => {
    const t = await trace('lora_kohya_img2img_trace');
    const inputs = await traceUNetInputs(t);
    const none = await unet.run(inputs);
    const zero = await unet.run(inputs, feedsOf([{ lora: parsed.get('kohya_lora')!, scale: 0 }]).feeds.unet);
    const full = await unet.run(inputs, feedsOf([{ lora: parsed.get('kohya_lora')!, scale: 0.8 }]).feeds.unet);
    assert.ok(maxAbs(none, zero) <= 1e-6, `scale 0 differs by ${maxAbs(none, zero)}`);
    assert.ok(maxAbs(none, full) > 1e-2, `the LoRA changes the UNet output by only ${maxAbs(none, full)}`);
  });
});

/**
 * LoCon modules for the UNet's convolutions (and one Linear), kohya naming: SGM names, and one diffusers name.
 * `module` is the diffusers module the test merges into; `cp` adds a CP core (lora_mid) and a 1×1 down.
 */
const LOCON: { key: string; module: string; rank: number; alpha?: number; cp?: boolean }[] = [
  { key: 'lora_unet_input_blocks_0_0', module: 'conv_in', rank: 2, alpha: 1 },
  { key: 'lora_unet_input_blocks_1_0_in_layers_2', module: 'down_blocks.0.resnets.0.conv1', rank: 4, alpha: 2 },
  { key: 'lora_unet_input_blocks_1_0_emb_layers_1', module: 'down_blocks.0.resnets.0.time_emb_proj', rank: 4, alpha: 4 },
  { key: 'lora_unet_input_blocks_3_0_op', module: 'down_blocks.0.downsamplers.0.conv', rank: 3 },
  { key: 'lora_unet_input_blocks_4_0_skip_connection', module: 'down_blocks.1.resnets.0.conv_shortcut', rank: 2, alpha: 1 },
  { key: 'lora_unet_middle_block_0_out_layers_3', module: 'mid_block.resnets.0.conv2', rank: 4, alpha: 2, cp: true },
  { key: 'lora_unet_output_blocks_2_2_conv', module: 'up_blocks.0.upsamplers.0.conv', rank: 4, alpha: 1 },
  { key: 'lora_unet_up_blocks_1_resnets_2_conv2', module: 'up_blocks.1.resnets.2.conv2', rank: 2, alpha: 2 },
  { key: 'lora_unet_conv_out', module: 'conv_out', rank: 2, alpha: 2 },
];

describe('stacking and LyCORIS LoCon against merged weights', () => {
  let merged: SdxlModel;
  let mte: [TextEncoder, TextEncoder];
  let munet: UNet;
  let locon: ParsedLora;
  const S_KOHYA = 0.8;
  const S_PEFT = 0.5;
  const S_LOCON = 0.7;

  before(async () => {
    // 1. a LoCon file, written as a user's file would be
    const rnd = seeded(4711);
    const unetW = await readAllF32(path.join(ORACLE, 'tiny-sdxl/unet/diffusion_pytorch_model.safetensors'));
    const tensors: Record<string, [Float32Array, number[]]> = {};
    for (const m of LOCON) {
      const w = unetW.get(`${m.module}.weight`)!;
      const [out, inF, kh = 1, kw = 1] = w.shape;
      const conv = w.shape.length === 4;
      if (m.cp) {
        tensors[`${m.key}.lora_down.weight`] = [rnd(m.rank * inF, 0.3), [m.rank, inF, 1, 1]];
        tensors[`${m.key}.lora_mid.weight`] = [rnd(m.rank * m.rank * kh * kw, 0.3), [m.rank, m.rank, kh, kw]];
      } else {
        tensors[`${m.key}.lora_down.weight`] = [rnd(m.rank * inF * kh * kw, 0.3), conv ? [m.rank, inF, kh, kw] : [m.rank, inF]];
      }
      tensors[`${m.key}.lora_up.weight`] = [rnd(out * m.rank, 0.3), conv ? [out, m.rank, 1, 1] : [out, m.rank]];
      if (m.alpha !== undefined) tensors[`${m.key}.alpha`] = [Float32Array.of(m.alpha), []];
    }
    const loconFile = path.join(tmp, 'locon.safetensors');
    await writeF32(loconFile, tensors);
    locon = await readLoraFile(loconFile);

    // 2. the merged copy: W + Σ s·(α/r)·up·down, computed here from the files (not from lora.ts' feeds)
    const merge = async (component: 'text_encoder' | 'text_encoder_2', keyOf: ((module: string) => string)[], scales: number[], files: string[]) => {
      const weights = await readAllF32(path.join(ORACLE, `tiny-sdxl/${component}/model.safetensors`));
      const adapters = await Promise.all(files.map((f) => readAllF32(loraPath(f))));
      const out = new Map<string, Float32Array>();
      for (const [name, w] of weights) {
        if (!name.endsWith('.weight') || !name.includes('encoder.layers')) continue;
        let v = w.data;
        adapters.forEach((a, i) => {
          const key = keyOf[i](name.slice(0, -'.weight'.length));
          const down = a.get(`${key}.lora_down.weight`) ?? a.get(`${key}.lora_A.weight`);
          const up = a.get(`${key}.lora_up.weight`) ?? a.get(`${key}.lora_B.weight`);
          if (!down || !up) return;
          const rank = down.shape[0];
          const alpha = a.get(`${key}.alpha`)?.data[0] ?? rank;
          v = addLowRank(v, up.data, down.data, rank, scales[i] * (alpha / rank));
        });
        if (v !== w.data) out.set(name, v);
      }
      assert.equal(out.size, 24, `${component}: merged modules`);
      return out;
    };
    const us = (m: string) => m.replace(/\./g, '_');
    const te1 = await merge('text_encoder', [(m) => `lora_te1_${us(m)}`, (m) => `text_encoder.${m}`], [S_KOHYA, S_PEFT], ['kohya_lora', 'peft_lora']);
    const te2 = await merge('text_encoder_2', [(m) => `lora_te2_${us(m)}`, (m) => `text_encoder_2.${m}`], [S_KOHYA, S_PEFT], ['kohya_lora', 'peft_lora']);
    const peft = await readAllF32(loraPath('peft_lora'));
    const unetMerged = new Map<string, Float32Array>();
    for (const [name, w] of unetW) {
      const module = name.slice(0, -'.weight'.length);
      const a = peft.get(`unet.${module}.lora_A.weight`);
      if (!name.endsWith('.weight') || !a) continue;
      unetMerged.set(name, addLowRank(w.data, peft.get(`unet.${module}.lora_B.weight`)!.data, a.data, a.shape[0], S_PEFT));
    }
    assert.equal(unetMerged.size, 302);
    for (const m of LOCON) {
      const name = `${m.module}.weight`;
      const w = unetMerged.get(name) ?? unetW.get(name)!.data;
      let down = tensors[`${m.key}.lora_down.weight`][0];
      if (m.cp) {
        // down'[r, i, y, x] = Σ_s mid[r, s, y, x]·down[s, i]
        const [mid, [r, s, kh, kw]] = tensors[`${m.key}.lora_mid.weight`];
        const inF = down.length / s;
        const eff = new Float32Array(r * inF * kh * kw);
        for (let a = 0; a < r; a++) for (let i = 0; i < inF; i++) for (let k = 0; k < kh * kw; k++) {
          let acc = 0;
          for (let b = 0; b < s; b++) acc += mid[(a * s + b) * kh * kw + k] * down[b * inF + i];
          eff[(a * inF + i) * kh * kw + k] = acc;
        }
        down = eff;
      }
      unetMerged.set(name, addLowRank(w, tensors[`${m.key}.lora_up.weight`][0], down, m.rank, S_LOCON * ((m.alpha ?? m.rank) / m.rank)));
    }
    const dir = await writeModelCopy(path.join(tmp, 'merged'), { text_encoder: te1, text_encoder_2: te2, unet: unetMerged });
    merged = await loadModel(dir, { cacheDir: path.join(tmp, 'cache-merged') });
    mte = [await TextEncoder.create(merged, 'textEncoder1', SETTINGS), await TextEncoder.create(merged, 'textEncoder2', SETTINGS)];
    munet = await UNet.create(merged, SETTINGS);
  });

  after(async () => {
    await Promise.all([mte?.[0]?.release(), mte?.[1]?.release(), munet?.release()]);
  });

  test('the LoCon file: every module matched, conv factors fed with their kernels', () => {
    assert.equal(locon.modules.size, LOCON.length);
    assert.deepEqual(locon.unsupported, []);
    const mid = locon.modules.get('lora_unet_middle_block_0_out_layers_3')!;
    assert.deepEqual(mid.downShape, [4, 64, 3, 3], 'the CP core folds into a 3×3 down factor');
    const { feeds, unmatched, matched } = feedsOf([{ lora: locon, scale: S_LOCON }]);
    assert.deepEqual(unmatched, []);
    assert.equal(matched, LOCON.length);
    assert.deepEqual(feeds.unet['lora_down:down_blocks.0.resnets.0.conv1'].dims, [4, 16, 3, 3]);
    assert.deepEqual(feeds.unet['lora_up:down_blocks.0.resnets.0.conv1'].dims, [16, 4, 1, 1]);
    assert.deepEqual(feeds.unet['lora_down:down_blocks.1.resnets.0.conv_shortcut'].dims, [2, 16, 1, 1]);
    assert.deepEqual(feeds.unet['lora_down:down_blocks.0.resnets.0.time_emb_proj'].dims, [4, 64]);
  });

  test(`text encoders: kohya_lora ${S_KOHYA} + peft_lora ${S_PEFT} stacked = merged weights within ${MERGE_TOL}`, async () => {
    const { feeds, matched } = feedsOf([
      { lora: parsed.get('kohya_lora')!, scale: S_KOHYA },
      { lora: parsed.get('peft_lora')!, scale: S_PEFT },
    ]);
    assert.equal(matched, 700);
    assert.deepEqual(feeds.textEncoder1['lora_down:text_model.encoder.layers.0.self_attn.q_proj'].dims, [8, 32], 'ranks concatenate: 4 + 4');
    const t = await trace('lora_kohya_img2img_trace');
    for (const i of [0, 1] as const) {
      const enc = i === 0 ? 'text_encoder' : 'text_encoder_2';
      const ids = await traceIds(t, enc);
      const got = await te[i].encode(ids, 2, { lora: i === 0 ? feeds.textEncoder1 : feeds.textEncoder2 });
      const want = await mte[i].encode(ids, 2);
      const plain = await te[i].encode(ids, 2);
      const errs = {
        penultimate: maxAbs(got.penultimate, want.penultimate),
        lastHidden: maxAbs(got.lastHidden, want.lastHidden),
        pooled: maxAbs(got.pooled, want.pooled),
      };
      console.log(`# stacked ${enc} vs merged: ${JSON.stringify(errs)}; effect of the adapters ${maxAbs(plain.lastHidden, want.lastHidden).toFixed(3)}`);
      for (const [k, e] of Object.entries(errs)) assert.ok(e <= MERGE_TOL, `${enc} ${k}: ${e}`);
      assert.ok(maxAbs(plain.lastHidden, want.lastHidden) > 1e-2, 'the merged adapters change the encoder');
    }
  });

  test(`UNet: peft_lora ${S_PEFT} + LoCon ${S_LOCON} stacked = merged weights within ${MERGE_TOL}`, async () => {
    const inputs = await traceUNetInputs(await trace('img2img_trace'));
    const { feeds } = feedsOf([
      { lora: parsed.get('peft_lora')!, scale: S_PEFT },
      { lora: locon, scale: S_LOCON },
    ]);
    const got = await unet.run(inputs, feeds.unet);
    const want = await munet.run(inputs);
    const peftOnly = await unet.run(inputs, feedsOf([{ lora: parsed.get('peft_lora')!, scale: S_PEFT }]).feeds.unet);
    const err = maxAbs(got, want);
    console.log(`# stacked UNet vs merged: ${err}; LoCon effect ${maxAbs(got, peftOnly).toFixed(4)}`);
    assert.ok(err <= MERGE_TOL, `UNet: ${err}`);
    assert.ok(maxAbs(got, peftOnly) > 1e-3, 'the LoCon modules change the UNet output');
  });
});

describe('switching adapters on one session', () => {
  test('none → kohya → peft → both, twice: repeats are bit-identical, each matches its reference', async () => {
    const kohya = feedsOf([{ lora: parsed.get('kohya_lora')!, scale: 0.8 }]).feeds;
    const peft = feedsOf([{ lora: parsed.get('peft_lora')!, scale: 0.8 }]).feeds;
    const both = feedsOf([
      { lora: parsed.get('kohya_lora')!, scale: 0.8 },
      { lora: parsed.get('peft_lora')!, scale: 0.8 },
    ]).feeds;
    const runs: [string, string, Record<string, TensorIn> | undefined][] = [
      ['none', 'img2img_trace', undefined],
      ['kohya', 'lora_kohya_img2img_trace', kohya.unet],
      ['peft', 'lora_peft_img2img_trace', peft.unet],
      ['both', 'img2img_trace', both.unet],
    ];
    const first = new Map<string, Float32Array>();
    const teFirst = new Map<string, Float32Array>();
    const ids = await traceIds(await trace('img2img_trace'), 'text_encoder');
    const teLora = { none: undefined, kohya: kohya.textEncoder1, peft: peft.textEncoder1, both: both.textEncoder1 } as Record<string, Record<string, TensorIn> | undefined>;
    for (const round of [0, 1]) {
      for (const [name, traceName, lora] of runs) {
        const t = await trace(traceName);
        const out = await unet.run(await traceUNetInputs(t), lora);
        const enc = (await te[0].encode(ids, 2, { lora: teLora[name] })).lastHidden;
        if (round === 0) {
          first.set(name, out);
          teFirst.set(name, enc);
          if (name !== 'both') {
            const err = maxAbs(out, await t.f32('step00/noise_pred_raw'));
            assert.ok(err <= TOL, `${name}: step00 noise_pred_raw error ${err}`);
          }
        } else {
          assert.deepEqual(out, first.get(name), `${name}: the UNet output changed after other adapters ran`);
          assert.deepEqual(enc, teFirst.get(name), `${name}: the text encoder output changed after other adapters ran`);
        }
      }
    }
    assert.ok(maxAbs(first.get('both')!, first.get('none')!) > 1e-2);
  });
});

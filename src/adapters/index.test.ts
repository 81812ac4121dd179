/**
 * Adapters through the whole pipeline: openModel + prepareAdapters + runPipeline reproduce the oracle's LoRA and
 * textual-inversion traces from their seeds; the job log reports what was not applied; switching adapters between
 * requests creates no session.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openTestModel } from '../engine/test-support.ts';
import type { LoadedModel } from '../engine/model-manager.ts';
import type { GenerateRequest } from '../contract/types.ts';
import { Session } from '../onnx/session.ts';
import { runPipeline } from '../pipeline/generate.ts';
import { requestFromTrace } from '../pipeline/trace-request.ts';
import { TraceFile } from '../weights/trace.ts';
import { prepareAdapters } from './index.ts';
import { loraPath, maxAbs, ORACLE, readAllF32, removeTmp, seeded, TI_FILE, tmpDir, toNhwc, writeF32 } from './test-support.ts';

const IMAGE_TOL = 1e-3;
const EMBEDS_TOL = 1e-4;

let tmp: string;
let model: LoadedModel;

before(async () => {
  tmp = tmpDir('adapters');
  model = await openTestModel(path.join(ORACLE, 'tiny-sdxl'), path.join(tmp, 'cache'));
});
after(async () => {
  await model?.release();
  removeTmp(tmp);
});

interface Run {
  image: Float32Array;
  got: Map<string, Float32Array>;
  logs: string[];
}

/** One request from a trace's parameters with the given adapters, as the worker runs it. */
async function run(traceName: string, adapters: Pick<GenerateRequest, 'loras' | 'embeddings'>): Promise<Run & { request: GenerateRequest }> {
  const { request: base } = await requestFromTrace(ORACLE, traceName);
  const request = { ...base, ...adapters };
  const logs: string[] = [];
  const feeds = await prepareAdapters(model, request, (l) => logs.push(l));
  const got = new Map<string, Float32Array>();
  const out = await runPipeline(model.pipeline, request, feeds, { trace: (k, v) => got.set(k, v.slice()), longPrompts: 'truncate' });
  return { request, image: toNhwc(out.imagesFloat, request.numImages, request.height, request.width), got, logs };
}

/** Max abs errors of the run against its trace: conditioning, first UNet call, final image. */
async function errorsAgainst(traceName: string, r: Run): Promise<Record<string, number>> {
  const t = await TraceFile.open(path.join(ORACLE, `${traceName}.safetensors`));
  const errs: Record<string, number> = {};
  for (const k of ['unet_cond/encoder_hidden_states', 'unet_cond/text_embeds', 'step00/noise_pred_raw']) errs[k] = maxAbs(r.got.get(k)!, await t.f32(k));
  errs['output/image_np'] = maxAbs(r.image, await t.f32('output/image_np'));
  return errs;
}

function assertParity(label: string, errs: Record<string, number>): void {
  console.log(`# ${label}: ${JSON.stringify(errs)}`);
  for (const [k, e] of Object.entries(errs)) assert.ok(e <= (k === 'output/image_np' ? IMAGE_TOL : EMBEDS_TOL), `${label} ${k}: max abs error ${e}`);
}

const lora = (name: string, scale = 0.8) => ({ file: loraPath(name), scale });
const results = new Map<string, Run>();

describe('the oracle traces reproduced through the pipeline', () => {
  test('kohya_lora at 0.8: lora_kohya_img2img_trace', async () => {
    const r = await run('lora_kohya_img2img_trace', { loras: [lora('kohya_lora')], embeddings: [] });
    results.set('kohya', r);
    assertParity('kohya_lora', await errorsAgainst('lora_kohya_img2img_trace', r));
    assert.deepEqual(r.logs, ['LoRA: 350 modules applied from 1 file(s)']);
  });

  test('peft_lora at 0.8 and its two re-encodings: lora_peft_img2img_trace', async () => {
    const peft = await run('lora_peft_img2img_trace', { loras: [lora('peft_lora')], embeddings: [] });
    results.set('peft', peft);
    assertParity('peft_lora', await errorsAgainst('lora_peft_img2img_trace', peft));
    for (const f of ['diffusers_lora', 'kohya_diffusers_names_lora']) {
      const r = await run('lora_peft_img2img_trace', { loras: [lora(f)], embeddings: [] });
      assertParity(f, await errorsAgainst('lora_peft_img2img_trace', r));
      assert.ok(maxAbs(r.image, peft.image) <= 1e-6, `${f} vs peft_lora image: ${maxAbs(r.image, peft.image)}`);
    }
  });

  test('textual inversion <s0> <s1>: ti_txt2img_trace', async () => {
    const r = await run('ti_txt2img_trace', { loras: [], embeddings: [{ file: TI_FILE, tokens: ['<s0>', '<s1>'] }] });
    results.set('ti', r);
    assertParity('ti', await errorsAgainst('ti_txt2img_trace', r));
    assert.deepEqual(r.logs, [`embedding ${TI_FILE}: 2 vector(s) bound to <s0> <s1>`]);
  });

  test('the same embedding bound to one token that expands to two gives the same image', async () => {
    const { request } = await requestFromTrace(ORACLE, 'ti_txt2img_trace');
    const prompt = request.prompt.replace('<s0> <s1>', '<robot>');
    const logs: string[] = [];
    const req = { ...request, prompt, embeddings: [{ file: TI_FILE, tokens: ['<robot>'] }] };
    const out = await runPipeline(model.pipeline, req, await prepareAdapters(model, req, (l) => logs.push(l)), { longPrompts: 'truncate' });
    const err = maxAbs(toNhwc(out.imagesFloat, 1, 64, 64), results.get('ti')!.image);
    assert.ok(err <= 1e-6, `expanded token image differs by ${err}`);
    assert.match(logs[0], /2 vector\(s\) bound to <robot> <robot>#1/);
  });
});

describe('switching adapters between requests', () => {
  test('kohya → TI → none → peft → kohya+peft → kohya creates no session; repeats are bit-identical', async () => {
    assert.ok(results.has('kohya') && results.has('peft') && results.has('ti'), 'runs after the trace tests');
    const create = Session.create;
    let created = 0;
    Session.create = (async (...args: Parameters<typeof Session.create>) => {
      created++;
      return create.apply(Session, args);
    }) as typeof Session.create;
    try {
      const unet = model.unet;
      const k1 = await run('lora_kohya_img2img_trace', { loras: [lora('kohya_lora')], embeddings: [] });
      const ti = await run('ti_txt2img_trace', { loras: [], embeddings: [{ file: TI_FILE, tokens: ['<s0>', '<s1>'] }] });
      const none = await run('img2img_trace', { loras: [], embeddings: [] });
      const peft = await run('lora_peft_img2img_trace', { loras: [lora('peft_lora')], embeddings: [] });
      const both = await run('img2img_trace', { loras: [lora('kohya_lora'), lora('peft_lora', 0.5)], embeddings: [] });
      const k2 = await run('lora_kohya_img2img_trace', { loras: [lora('kohya_lora')], embeddings: [] });
      assert.equal(created, 0, 'no session was created while switching adapters');
      assert.equal(model.unet, unet);
      assert.deepEqual(k1.image, results.get('kohya')!.image, 'kohya after other requests');
      assert.deepEqual(k2.image, k1.image, 'kohya after peft and a stack');
      assert.deepEqual(peft.image, results.get('peft')!.image, 'peft after kohya');
      assert.deepEqual(ti.image, results.get('ti')!.image, 'TI after LoRA');
      const noneErr = maxAbs(none.image, await (await TraceFile.open(path.join(ORACLE, 'img2img_trace.safetensors'))).f32('output/image_np'));
      console.log(`# no adapters after LoRA/TI requests vs img2img_trace: ${noneErr}`);
      assert.ok(noneErr <= IMAGE_TOL, `no adapters after adapters: ${noneErr}`);
      assert.deepEqual(both.logs, ['LoRA: 700 modules applied from 2 file(s)']);
      assert.ok(maxAbs(both.image, none.image) > 1e-2, 'the stacked LoRAs change the image');
    } finally {
      Session.create = create;
    }
  });
});

describe('reports and refusals through prepareAdapters', () => {
  test('modules that match nothing and keys of unsupported kinds are logged by name', async () => {
    const kohya = await readAllF32(loraPath('kohya_lora'));
    const tensors: Record<string, [Float32Array, number[]]> = {};
    for (const [k, v] of kohya) if (k.startsWith('lora_te1_text_model_encoder_layers_1_')) tensors[k] = [v.data, v.shape];
    const r = seeded(9);
    tensors['lora_unet_input_blocks_42_1_proj_in.lora_down.weight'] = [r(8), [4, 2]];
    tensors['lora_unet_input_blocks_42_1_proj_in.lora_up.weight'] = [r(8), [2, 4]];
    tensors['lora_unet_input_blocks_4_1_proj_out.hada_w1_a'] = [r(8), [2, 4]];
    const f = path.join(tmp, 'extra.safetensors');
    await writeF32(f, tensors);
    const logs: string[] = [];
    const { request } = await requestFromTrace(ORACLE, 'img2img_trace');
    const feeds = await prepareAdapters(model, { ...request, loras: [{ file: f, scale: 1 }] }, (l) => logs.push(l));
    assert.equal(Object.keys(feeds.textEncoder1 ?? {}).length, 12, 'the 6 matching modules are applied');
    assert.equal(logs.length, 3, logs.join('\n'));
    assert.match(logs[0], /1 keys not applied \(LoHa modules are not supported\): lora_unet_input_blocks_4_1_proj_out\.hada_w1_a/);
    assert.equal(logs[1], 'LoRA: 6 modules applied from 1 file(s)');
    assert.equal(logs[2], `LoRA: 1 modules match nothing in this model and were not applied: ${f}: lora_unet_input_blocks_42_1_proj_in`);
  });

  test('refusals carry the request field', async () => {
    const { request } = await requestFromTrace(ORACLE, 'txt2img_trace');
    const log = () => {};
    await assert.rejects(prepareAdapters(model, { ...request, loras: [lora('kohya_lora'), { file: '/etc/passwd.ckpt', scale: 1 }] }, log), { code: 'ADAPTER_INVALID', field: 'loras[1].path' });
    await assert.rejects(prepareAdapters(model, { ...request, embeddings: [{ file: TI_FILE, tokens: ['<a>', '<b>', '<c>'] }] }, log), { code: 'INVALID_INPUT', field: 'embeddings[0].tokens' });
    // a token that is already a word of the vocabulary
    await assert.rejects(prepareAdapters(model, { ...request, embeddings: [{ file: TI_FILE, tokens: ['a</w>', '<s1>'] }] }, log), { code: 'INVALID_INPUT' });
  });

  test('a single-encoder embedding binds to text encoder 1 only', async () => {
    const f = path.join(tmp, 'te1-only.safetensors');
    await writeF32(f, { emb_params: [seeded(10)(2 * 32), [2, 32]] });
    const { request } = await requestFromTrace(ORACLE, 'ti_txt2img_trace');
    const logs: string[] = [];
    const feeds = await prepareAdapters(model, { ...request, embeddings: [{ file: f, tokens: ['<s0>', '<s1>'] }] }, (l) => logs.push(l));
    assert.equal(feeds.extraEmbeddings?.[0]?.length, 64);
    assert.equal(feeds.extraEmbeddings?.[1], undefined);
    const [t1, t2] = feeds.tokenizers!;
    assert.equal(t2, model.tokenizers[1], 'text encoder 2 keeps the model tokenizer');
    const ids1 = t1.tokenizeForModel(request.prompt, { long: 'truncate' })[0];
    const ids2 = t2.tokenizeForModel(request.prompt, { long: 'truncate' })[0];
    assert.deepEqual(ids1.slice(4, 6), [814, 815]);
    assert.ok(ids2.every((i) => i < 814), 'text encoder 2 sees <s0> <s1> as plain text');
    const out = await runPipeline(model.pipeline, { ...request, steps: 2 }, feeds);
    assert.equal(out.images.length, 1);
  });
});

/**
 * LoRA files without sessions: key styles, refusal of pickles and hostile files, unsupported LyCORIS kinds,
 * the report of modules that match nothing, and the rank-concatenation algebra of stacking.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildClipTextGraph } from '../networks/clip-text.ts';
import { buildUNetGraph } from '../networks/unet.ts';
import { loadModel } from '../weights/load-model.ts';
import type { SdxlModel } from '../weights/types.ts';
import { sgmNamer } from './index.ts';
import { candidateKeys, splitLoraKey, splitUnsupportedKey } from './lora-format.ts';
import { buildSlotTable, loraFeeds, readLoraFile, type SlotTable } from './lora.ts';
import { loraPath, maxAbs, ORACLE, readAllF32, removeTmp, seeded, tmpDir, writeF32 } from './test-support.ts';

let tmp: string;
let table: SlotTable;

function slotTableOf(model: SdxlModel): SlotTable {
  return buildSlotTable(
    {
      unet: buildUNetGraph(model, { lora: true }).loraSlots,
      textEncoder1: buildClipTextGraph(model, 'textEncoder1', { lora: true }).loraSlots,
      textEncoder2: buildClipTextGraph(model, 'textEncoder2', { lora: true }).loraSlots,
    },
    sgmNamer(model.config.unet),
  );
}

before(async () => {
  tmp = tmpDir('lora-format');
  table = slotTableOf(await loadModel(path.join(ORACLE, 'tiny-sdxl'), { cacheDir: path.join(tmp, 'cache') }));
});
after(() => removeTmp(tmp));

const file = (name: string) => path.join(tmp, name);
const PICKLE = Buffer.from([0x80, 0x02, 0x63, 0x5f, 0x5f, 0x62, 0x75, 0x69, 0x6c, 0x74, 0x69, 0x6e, 0x5f, 0x5f, 0x0a, 0x65, 0x76, 0x61, 0x6c, 0x0a]); // \x80\x02c__builtin__\neval\n

describe('key styles', () => {
  test('every supported suffix splits into module and role', () => {
    const cases: [string, string, string][] = [
      ['lora_unet_input_blocks_4_1_proj_in.lora_down.weight', 'lora_unet_input_blocks_4_1_proj_in', 'down'],
      ['lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight', 'lora_te2_text_model_encoder_layers_0_mlp_fc1', 'up'],
      ['lora_te1_text_model_encoder_layers_0_mlp_fc1.alpha', 'lora_te1_text_model_encoder_layers_0_mlp_fc1', 'alpha'],
      ['unet.mid_block.attentions.0.proj_in.lora_A.weight', 'unet.mid_block.attentions.0.proj_in', 'down'],
      ['unet.mid_block.attentions.0.proj_in.lora_B.weight', 'unet.mid_block.attentions.0.proj_in', 'up'],
      ['unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight', 'unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q', 'down'],
      ['text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.up.weight', 'text_encoder.text_model.encoder.layers.0.self_attn.q_proj', 'up'],
      ['lora_unet_middle_block_0_out_layers_3.lora_mid.weight', 'lora_unet_middle_block_0_out_layers_3', 'mid'],
    ];
    for (const [key, module, role] of cases) assert.deepEqual(splitLoraKey(key), { module, role }, key);
    assert.equal(splitLoraKey('lora_unet_x.hada_w1_a'), undefined);
    assert.deepEqual(splitUnsupportedKey('lora_unet_x.hada_w1_a'), { module: 'lora_unet_x', kind: 'LoHa' });
    assert.deepEqual(splitUnsupportedKey('lora_unet_x.lokr_w2_b'), { module: 'lora_unet_x', kind: 'LoKr' });
    assert.deepEqual(splitUnsupportedKey('lora_unet_x.dora_scale'), { module: 'lora_unet_x', kind: 'DoRA' });
    assert.deepEqual(splitUnsupportedKey('unet.x.to_q.lora_magnitude_vector.weight'), { module: 'unet.x.to_q', kind: 'DoRA' });
    assert.equal(splitUnsupportedKey('model.diffusion_model.out.2.weight'), undefined);
  });

  test('one model module is reachable under the PEFT, kohya-SGM and kohya-diffusers names', () => {
    const m = 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q';
    assert.deepEqual(candidateKeys('unet', m, 'input_blocks.4.1.transformer_blocks.0.attn1.to_q'), [
      `unet.${m}`,
      'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q',
      'lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q',
    ]);
    for (const k of candidateKeys('unet', m)) assert.equal(table.byKey.get(k)?.slot.module, m, k);
    assert.equal(table.byKey.get('lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q')?.slot.module, m);
    assert.equal(table.byKey.get('lora_te1_text_model_encoder_layers_3_mlp_fc2')?.target, 'textEncoder1');
    assert.equal(table.byKey.get('text_encoder_2.text_model.encoder.layers.3.mlp.fc2')?.target, 'textEncoder2');
    // 374 UNet slots under 3 names each, 2 × 24 text-encoder slots under 2: no name is shared by two slots
    assert.equal(table.byKey.size, 374 * 3 + 48 * 2);
  });

  test('the single-file layout yields the same slots: the oracle files match 350/350 there too', async () => {
    const single = slotTableOf(await loadModel(path.join(ORACLE, 'tiny-sdxl.safetensors'), { cacheDir: path.join(tmp, 'cache-single') }));
    assert.deepEqual([...single.byKey.keys()].sort(), [...table.byKey.keys()].sort());
    for (const f of ['kohya_lora', 'peft_lora']) {
      const r = loraFeeds(single, [{ lora: await readLoraFile(loraPath(f)), scale: 1 }]);
      assert.deepEqual([r.matched, r.unmatched.length], [350, 0], f);
    }
  });
});

describe('refused files', () => {
  test('pickled .pt / .ckpt / .bin files are refused before being opened', async () => {
    for (const name of ['lora.pt', 'lora.ckpt', 'lora.bin', 'LORA.PT', 'lora.safetensors.pt']) {
      fs.writeFileSync(file(name), PICKLE);
      await assert.rejects(readLoraFile(file(name), 'loras[0].path'), (e: any) => {
        assert.equal(e.code, 'ADAPTER_INVALID');
        assert.equal(e.field, 'loras[0].path');
        assert.match(e.message, /pickled \.pt\/\.ckpt/);
        assert.ok(e.message.includes(name), e.message);
        return true;
      });
    }
  });

  test('hostile or broken .safetensors files are refused as ADAPTER_INVALID', async () => {
    fs.writeFileSync(file('pickle.safetensors'), PICKLE);
    const huge = Buffer.alloc(16);
    huge.writeBigUInt64LE(1n << 62n);
    fs.writeFileSync(file('huge-header.safetensors'), huge);
    const hdr = Buffer.from(JSON.stringify({ x: { dtype: 'F32', shape: [1000, 1000], data_offsets: [0, 4000000] } }));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hdr.length));
    fs.writeFileSync(file('past-eof.safetensors'), Buffer.concat([len, hdr, Buffer.alloc(16)]));
    fs.symlinkSync('/dev/zero', file('zero.safetensors'));
    fs.mkdirSync(file('folder.safetensors'));
    for (const name of ['pickle.safetensors', 'huge-header.safetensors', 'past-eof.safetensors', 'zero.safetensors', 'folder.safetensors', 'missing.safetensors']) {
      await assert.rejects(readLoraFile(file(name)), (e: any) => {
        assert.equal(e.code, 'ADAPTER_INVALID', `${name}: ${e.code} ${e.message}`);
        assert.ok(e.message.includes(name), e.message);
        return true;
      });
    }
  });

  test('a LoHa-only file is refused, naming the kind', async () => {
    const r = seeded(1);
    const m = 'lora_unet_input_blocks_4_1_proj_in';
    await writeF32(file('loha.safetensors'), {
      [`${m}.hada_w1_a`]: [r(32 * 4), [32, 4]],
      [`${m}.hada_w1_b`]: [r(4 * 32), [4, 32]],
      [`${m}.hada_w2_a`]: [r(32 * 4), [32, 4]],
      [`${m}.hada_w2_b`]: [r(4 * 32), [4, 32]],
      [`${m}.alpha`]: [Float32Array.of(4), []],
    });
    await assert.rejects(readLoraFile(file('loha.safetensors')), { code: 'ADAPTER_INVALID', message: /holds no LoRA factors \(LoHa adapters are not supported; LoRA and LyCORIS LoCon are\)/ });
  });

  test('mixed files: LoKr, DoRA and unknown keys are not applied but listed; plain modules are', async () => {
    const r = seeded(2);
    await writeF32(file('mixed.safetensors'), {
      'lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight': [r(4 * 32), [4, 32]],
      'lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight': [r(32 * 4), [32, 4]],
      // DoRA: down/up plus a magnitude; applying down/up alone would be wrong
      'lora_te1_text_model_encoder_layers_0_self_attn_k_proj.lora_down.weight': [r(4 * 32), [4, 32]],
      'lora_te1_text_model_encoder_layers_0_self_attn_k_proj.lora_up.weight': [r(32 * 4), [32, 4]],
      'lora_te1_text_model_encoder_layers_0_self_attn_k_proj.dora_scale': [r(32), [1, 32]],
      'lora_te1_text_model_encoder_layers_0_self_attn_v_proj.lokr_w1': [r(4), [2, 2]],
      'lora_te1_text_model_encoder_layers_0_self_attn_v_proj.lokr_w2': [r(256), [16, 16]],
      'lora_te1_text_model_encoder_layers_0_self_attn_out_proj.lora_up.weight': [r(32 * 4), [32, 4]],
      'some_training_step_counter': [Float32Array.of(1000), []],
    });
    const lora = await readLoraFile(file('mixed.safetensors'));
    assert.deepEqual([...lora.modules.keys()], ['lora_te1_text_model_encoder_layers_0_self_attn_q_proj']);
    assert.deepEqual(lora.unsupportedKinds.sort(), ['DoRA', 'LoKr']);
    assert.deepEqual(lora.unsupported.sort(), [
      'lora_te1_text_model_encoder_layers_0_self_attn_k_proj.dora_scale',
      'lora_te1_text_model_encoder_layers_0_self_attn_k_proj.lora_down.weight',
      'lora_te1_text_model_encoder_layers_0_self_attn_k_proj.lora_up.weight',
      'lora_te1_text_model_encoder_layers_0_self_attn_out_proj.lora_up.weight',
      'lora_te1_text_model_encoder_layers_0_self_attn_v_proj.lokr_w1',
      'lora_te1_text_model_encoder_layers_0_self_attn_v_proj.lokr_w2',
      'some_training_step_counter',
    ]);
  });

  test('inconsistent factors are refused, naming the module', async () => {
    const r = seeded(3);
    const m = 'lora_te1_text_model_encoder_layers_0_mlp_fc1';
    await writeF32(file('rank.safetensors'), { [`${m}.lora_down.weight`]: [r(4 * 32), [4, 32]], [`${m}.lora_up.weight`]: [r(128 * 2), [128, 2]] });
    await assert.rejects(readLoraFile(file('rank.safetensors')), { code: 'ADAPTER_INVALID', message: /module "lora_te1_text_model_encoder_layers_0_mlp_fc1" has down rank 4 but up \[128,2\]/ });
    await writeF32(file('alpha.safetensors'), { [`${m}.lora_down.weight`]: [r(4 * 32), [4, 32]], [`${m}.lora_up.weight`]: [r(128 * 4), [128, 4]], [`${m}.alpha`]: [Float32Array.of(NaN), []] });
    await assert.rejects(readLoraFile(file('alpha.safetensors')), { code: 'ADAPTER_INVALID', message: /alpha/ });
    // names a real module with the widths of another model (an SD 1.5 LoRA, say)
    await writeF32(file('shape.safetensors'), { [`${m}.lora_down.weight`]: [r(4 * 768), [4, 768]], [`${m}.lora_up.weight`]: [r(3072 * 4), [3072, 4]] });
    const lora = await readLoraFile(file('shape.safetensors'));
    assert.throws(() => loraFeeds(table, [{ lora, scale: 1 }]), { code: 'ADAPTER_INVALID', message: /text_model\.encoder\.layers\.0\.mlp\.fc1.*\[4,768\].*\[r, 32\]/ });
    await writeF32(file('empty.safetensors'), {});
    await assert.rejects(readLoraFile(file('empty.safetensors')), { code: 'ADAPTER_INVALID', message: /holds no LoRA factors/ });
  });
});

describe('feeds', () => {
  test('adapter modules that match nothing are reported, the others applied', async () => {
    const kohya = await readAllF32(loraPath('kohya_lora'));
    const keep = 'lora_te1_text_model_encoder_layers_0_self_attn_q_proj';
    const tensors: Record<string, [Float32Array, number[]]> = {};
    for (const [k, v] of kohya) if (k.startsWith(`${keep}.`)) tensors[k] = [v.data, v.shape];
    const r = seeded(4);
    for (const ghost of ['lora_unet_input_blocks_99_1_proj_in', 'unet.not_a_block.to_q', 'lora_te3_text_model_encoder_layers_0_mlp_fc1']) {
      tensors[`${ghost}.lora_down.weight`] = [r(4 * 32), [4, 32]];
      tensors[`${ghost}.lora_up.weight`] = [r(32 * 4), [32, 4]];
    }
    await writeF32(file('extra.safetensors'), tensors);
    const lora = await readLoraFile(file('extra.safetensors'));
    const { feeds, unmatched, matched } = loraFeeds(table, [{ lora, scale: 1 }]);
    assert.equal(matched, 1);
    assert.deepEqual(unmatched.sort(), [
      `${file('extra.safetensors')}: lora_te3_text_model_encoder_layers_0_mlp_fc1`,
      `${file('extra.safetensors')}: lora_unet_input_blocks_99_1_proj_in`,
      `${file('extra.safetensors')}: unet.not_a_block.to_q`,
    ]);
    assert.deepEqual(Object.keys(feeds.textEncoder1).sort(), ['lora_down:text_model.encoder.layers.0.self_attn.q_proj', 'lora_up:text_model.encoder.layers.0.self_attn.q_proj']);
    assert.deepEqual([Object.keys(feeds.unet).length, Object.keys(feeds.textEncoder2).length], [0, 0]);
  });

  test('stacking concatenates ranks: up·down of the feeds = Σ s·(α/r)·up·down of the files', async () => {
    const files = [
      { f: 'kohya_lora', s: 0.8, key: (m: string, sgm: string) => `lora_unet_${sgm.replace(/\./g, '_')}` },
      { f: 'peft_lora', s: 1.7, key: (m: string) => `unet.${m}` },
      { f: 'kohya_diffusers_names_lora', s: -0.4, key: (m: string) => `lora_unet_${m.replace(/\./g, '_')}` },
    ];
    const raw = await Promise.all(files.map((x) => readAllF32(loraPath(x.f))));
    const parsed = await Promise.all(files.map((x) => readLoraFile(loraPath(x.f))));
    const { feeds, matched } = loraFeeds(table, parsed.map((lora, i) => ({ lora, scale: files[i].s })));
    assert.equal(matched, 1050);
    const sgm = sgmNamer((await loadModel(path.join(ORACLE, 'tiny-sdxl'), { cacheDir: path.join(tmp, 'cache') })).config.unet);
    const modules = ['down_blocks.1.attentions.0.proj_in', 'mid_block.attentions.0.transformer_blocks.2.ff.net.0.proj', 'up_blocks.1.attentions.2.transformer_blocks.1.attn2.to_k'];
    for (const m of modules) {
      const down = feeds.unet[`lora_down:${m}`];
      const up = feeds.unet[`lora_up:${m}`];
      const [R, inF] = down.dims;
      const outF = up.dims[0];
      assert.equal(R, 12, m);
      const got = new Float64Array(outF * inF);
      const want = new Float64Array(outF * inF);
      for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) for (let r = 0; r < R; r++) got[o * inF + i] += up.data[o * R + r] * down.data[r * inF + i];
      files.forEach((x, j) => {
        const k = x.key(m, sgm(m)!);
        const d = raw[j].get(`${k}.lora_down.weight`) ?? raw[j].get(`${k}.lora_A.weight`)!;
        const u = raw[j].get(`${k}.lora_up.weight`) ?? raw[j].get(`${k}.lora_B.weight`)!;
        const rank = d.shape[0];
        const alpha = raw[j].get(`${k}.alpha`)?.data[0] ?? rank;
        for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) for (let r = 0; r < rank; r++) want[o * inF + i] += x.s * (alpha / rank) * u.data[o * rank + r] * d.data[r * inF + i];
      });
      const err = maxAbs(got, want);
      assert.ok(err <= 1e-6, `${m}: stacked delta differs by ${err}`);
    }
  });
});

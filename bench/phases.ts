/**
 * The benchmark's phases; each runs in its own child process (fresh memory, its own peak RSS) and returns
 * figures (numbers that go into the report) and details (everything else worth keeping).
 */
import fs from 'node:fs';
import path from 'node:path';
import { sgmNamer } from '../src/adapters/index.ts';
import { buildSlotTable, loraFeeds, readLoraFile } from '../src/adapters/lora.ts';
import { ensureDefaultTestModel } from '../src/cli/make-test-model.ts';
import { openModel, type LoadedModel } from '../src/engine/model-manager.ts';
import { UNet } from '../src/networks/unet.ts';
import { buildConditioning } from '../src/pipeline/conditioning.ts';
import { runPipeline } from '../src/pipeline/generate.ts';
import { loadModel } from '../src/weights/load-model.ts';
import type { EngineSettings } from '../src/contract/settings.ts';
import { ensureQuantized } from '../src/quant/quantized-weights.ts';
import { VaeDecoder } from '../src/networks/vae.ts';
import type { LayerBuilders } from '../src/networks/blocks.ts';
import { decoderInt8Convs } from '../src/quant/vae-calibration.ts';
import { calibrationFile } from '../src/quant/calibration-cache.ts';
import { int8ConvLayers } from '../src/quant/int8-conv.ts';
import { snrDb } from '../src/quant/snr.ts';
import { decoderCalibrationInputs } from '../src/engine/calibration-inputs.ts';
import { TorchGenerator } from '../src/sampling/rng.ts';
import { sessionSettings, sessionTuning, type BenchOptions } from './args.ts';
import { unetFlops } from './flops.ts';
import { measureGemm } from './gemm.ts';
import { PROMPT, randomImage, request, unetInputs } from './inputs.ts';
import { uniform } from './random.ts';
import { ensureRandomLora, transformerLinearSlots } from './lora-file.ts';
import { currentRssGB, peakRssGB } from './system.ts';

export interface PhaseResult {
  figures: Record<string, number>;
  details: Record<string, unknown>;
}

export const LORA_RANK = 32;

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);
const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

async function timed<T>(label: string, fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await fn();
  const s = (performance.now() - t0) / 1000;
  log(`${label}: ${s.toFixed(2)} s (RSS ${currentRssGB().toFixed(1)} GB)`);
  return [r, s];
}

/** `warmups` untimed-for-the-figure calls, then `runs` timed calls; every time is kept. */
async function series(label: string, warmups: number, runs: number, fn: () => Promise<unknown>): Promise<{ warmupS: number[]; runsS: number[]; meanS: number }> {
  const warmupS: number[] = [];
  const runsS: number[] = [];
  for (let i = 0; i < warmups; i++) warmupS.push((await timed(`${label} warm-up ${i + 1}`, fn))[1]);
  for (let i = 0; i < runs; i++) runsS.push((await timed(`${label} run ${i + 1}/${runs}`, fn))[1]);
  return { warmupS: warmupS.map((x) => round(x)), runsS: runsS.map((x) => round(x)), meanS: mean(runsS) };
}

const cacheDir = (o: BenchOptions) => path.join(o.benchDir, 'cache');

/** The full-size model (or `source`) opened with the bench's engine settings and this phase's precision (fp32 by default). */
function open(o: BenchOptions, vary: Partial<EngineSettings> = {}, source = o.modelDir, dataDir = o.benchDir): Promise<LoadedModel> {
  const fp32: Partial<EngineSettings> = { weights: 'fp32', quantize: undefined, vaeQuantize: undefined, oneShot: false };
  return openModel({ name: 'bench', path: source }, { ...o.engine, ...fp32, dataDir, ...vary }, { session: sessionTuning(o) });
}

export async function phaseGemm(o: BenchOptions): Promise<PhaseResult> {
  const g = await measureGemm(sessionSettings(o));
  log(`GEMM ${g.shape}: ${g.gflops.toFixed(1)} GFLOP/s (FusedMatMul transB ${g.fusedTransBGflops.toFixed(1)})`);
  return { figures: { gemm_gflops: g.gflops, gemm_fused_transb_gflops: g.fusedTransBGflops }, details: { gemm: g } };
}

/** First session creation for every network; one-time caches are cleared first so their writing counts. */
export async function phaseColdLoad(o: BenchOptions): Promise<PhaseResult> {
  fs.rmSync(cacheDir(o), { recursive: true, force: true });
  const [m, s] = await timed('cold load (openModel: loadModel + 5 sessions + tokenizers)', () => open(o));
  const rss = currentRssGB();
  const [, rel] = await timed('release', () => m.release());
  return { figures: { cold_load_s: s }, details: { cold_rss_after_load_gb: round(rss), cold_release_s: round(rel), cold_peak_rss_gb: round(peakRssGB()) } };
}

/** Everything at 512² on the full model held as the server holds it (openModel: LoRA-capable graphs). */
export async function phaseMain512(o: BenchOptions): Promise<PhaseResult> {
  const fig: Record<string, number> = {};
  const det: Record<string, unknown> = {};
  const p = o.parts;
  const [m, loadS] = await timed('warm load (openModel, second creation, fresh process)', () => open(o));
  fig.warm_load_s = loadS;
  det.rss_after_load_gb = round(currentRssGB());
  const cfg = m.model.config.unet;
  const flops = unetFlops(cfg, { batch: 2, height: 64, width: 64, seq: 77 });
  fig.unet_512_flops = flops.flops;
  det.unet_matrix_params = flops.matrixParams;
  det.unet_attention_flops_512 = flops.attentionFlops;

  if (p.has('text')) {
    const set = { ...m.pipeline.encoderSet, long: 'chunk' as const };
    const enc = () => buildConditioning(set, { prompt: PROMPT, negativePrompt: '', guidanceScale: 7.5, numImages: 1, height: 512, width: 512 });
    const r = await series('text encoding (2 encoders × prompt + negative)', 1, 3, enc);
    fig.text_encoding_s = r.meanS;
    det.text_encoding = r;
  }

  const x = unetInputs(cfg, 64, 64);
  let stepS: number | undefined;
  if (p.has('unet') || p.has('lora')) {
    const r = await series('UNet CFG 512² (batch 2, 64×64)', 1, o.runs, () => m.unet.run(x));
    stepS = r.meanS;
    fig.unet_step_cfg_512_s = r.meanS;
    det.unet_512 = r;
    det.rss_after_unet_gb = round(currentRssGB());
  }

  if (p.has('lora') && stepS !== undefined) {
    const file = path.join(o.benchDir, `lora-rank${LORA_RANK}-kohya.safetensors`);
    const namer = sgmNamer(cfg);
    const info = await ensureRandomLora(file, m.unet.loraSlots, namer, LORA_RANK);
    if (info.written) log(`wrote ${file}: ${info.modules} modules, ${info.params} parameters`);
    // what prepareAdapters does for a LoRA it has not parsed yet: read, (slot table: once per model), feeds
    const [lora, readS] = await timed('LoRA read (parse + fp16→fp32)', () => readLoraFile(file));
    const [table, tableS] = await timed('LoRA slot table (once per model)', async () =>
      buildSlotTable({ unet: m.unet.loraSlots, textEncoder1: m.textEncoders[0].loraSlots, textEncoder2: m.textEncoders[1].loraSlots }, namer),
    );
    const [built, feedsS] = await timed('LoRA feeds', async () => loraFeeds(table, [{ lora, scale: 1 }]));
    if (built.unmatched.length > 0 || built.matched !== info.modules) throw new Error(`LoRA matched ${built.matched}/${info.modules} modules; unmatched e.g. ${built.unmatched.slice(0, 3).join(', ')}`);
    const feeds = built.feeds.unet;
    const [, firstS] = await timed('UNet 512² first call with the new LoRA feeds', () => m.unet.run(x, feeds));
    const steady = await series('UNet 512² with LoRA', 0, o.runs, () => m.unet.run(x, feeds));
    const [, backS] = await timed('UNet 512² first call after removing the LoRA', () => m.unet.run(x));
    fig.lora_read_s = readS;
    fig.lora_feeds_s = feedsS;
    fig.lora_first_call_s = firstS;
    fig.lora_step_cfg_512_s = steady.meanS;
    fig.lora_first_call_extra_s = firstS - steady.meanS;
    fig.lora_switch_s = readS + feedsS + (firstS - steady.meanS);
    fig.lora_switch_cached_s = feedsS + (firstS - steady.meanS);
    fig.lora_unset_first_call_extra_s = backS - stepS;
    fig.lora_step_overhead_s = steady.meanS - stepS;
    fig.lora_step_overhead_fraction = (steady.meanS - stepS) / stepS;
    det.lora = {
      file,
      rank: LORA_RANK,
      modules: info.modules,
      params: info.params,
      slots_total: m.unet.loraSlots.length,
      transformer_linear_slots: transformerLinearSlots(m.unet.loraSlots).length,
      slot_table_s: round(tableS),
      steady,
      unset_first_call_s: round(backS),
    };
  }

  if (p.has('vae')) {
    const img = uniform(3 * 512 * 512, 11);
    const enc = await series('VAE encode 512²', 1, 3, () => m.pipeline.vaeEncoder.encode(img, 1, 512, 512));
    const z = uniform(4 * 64 * 64, 12, 2);
    const dec = await series('VAE decode 512²', 1, 3, () => m.pipeline.vaeDecoder.decode(z, 1, 64, 64));
    fig.vae_encode_512_s = enc.meanS;
    fig.vae_decode_512_s = dec.meanS;
    det.vae_encode_512 = enc;
    det.vae_decode_512 = dec;
  }

  if (p.has('img2img')) {
    // 8 scheduled steps at strength 0.5 → 4 denoising steps (diffusers' img2img get_timesteps)
    const req = request({ task: 'image-to-image', width: 512, height: 512, steps: 8, strength: 0.5, image: randomImage(512, 512, 13) });
    let calls = 0;
    const run = () => runPipeline(m.pipeline, req, {}, { onStep: () => calls++ });
    if (!(p.has('unet') && p.has('vae') && p.has('text'))) await timed('img2img warm-up', run);
    calls = 0;
    const [out, s] = await timed('img2img 512² end-to-end (runPipeline)', run);
    fig.img2img_512_4steps_s = s;
    det.img2img_512 = { steps_run: calls, request: { steps: req.steps, strength: req.strength, sampler: req.sampler, guidance: req.guidanceScale }, timings: out.timings };
  }
  fig.peak_rss_gb = peakRssGB();
  await m.release();
  return { figures: fig, details: det };
}

/** The UNet without LoRA branches (lora: false), to price the empty LoRA inputs of the served graph. */
export async function phasePlainUNet(o: BenchOptions): Promise<PhaseResult> {
  const model = await loadModel(o.modelDir, { cacheDir: cacheDir(o) });
  const [unet, createS] = await timed('UNet (no LoRA branches) create', () => UNet.create(model, { ...sessionSettings(o), lora: false }));
  const r = await series('UNet (no LoRA branches) CFG 512²', 1, o.runs, () => unet.run(unetInputs(model.config.unet, 64, 64)));
  const peak = peakRssGB();
  await unet.release();
  return { figures: { unet_plain_step_cfg_512_s: r.meanS, unet_plain_create_s: createS, unet_plain_peak_rss_gb: peak }, details: { unet_plain_512: r } };
}

/** A full 1024² text-to-image run (for its peak RSS), then timed CFG UNet calls at 128×128 latents. */
export async function phase1024(o: BenchOptions): Promise<PhaseResult> {
  const [m, loadS] = await timed('load for 1024²', () => open(o));
  const cfg = m.model.config.unet;
  const req = request({ task: 'text-to-image', width: 1024, height: 1024, steps: 2 });
  const [out, e2eS] = await timed('txt2img 1024² 2 steps end-to-end (runPipeline)', () => runPipeline(m.pipeline, req));
  const x = unetInputs(cfg, 128, 128);
  const r = await series('UNet CFG 1024² (batch 2, 128×128)', 0, o.runs, () => m.unet.run(x));
  const fig: Record<string, number> = {
    unet_step_cfg_1024_s: r.meanS,
    unet_1024_flops: unetFlops(cfg, { batch: 2, height: 128, width: 128, seq: 77 }).flops,
    txt2img_1024_2steps_s: e2eS,
    vae_decode_1024_s: out.timings.vae_decode,
    peak_rss_1024_gb: peakRssGB(),
  };
  await m.release();
  return { figures: fig, details: { load_1024_s: round(loadS), txt2img_1024_timings: out.timings, unet_1024: r } };
}

/**
 * `--weights fp16`: the UNet and text encoders held in 16 bits (the fp32 benchmark model is converted once; the
 * conversion is timed on its own), 512² figures: load, text encoding, CFG UNet call, peak RSS.
 */
export async function phaseFp16(o: BenchOptions): Promise<PhaseResult> {
  const [, convertS] = await timed('fp16 copy of UNet + text encoders (once per checkpoint; a 16-bit checkpoint needs none)', () =>
    loadModel(o.modelDir, { cacheDir: cacheDir(o), weights: 'fp16' }),
  );
  const [m, loadS] = await timed('load with --weights fp16 (openModel)', () => open(o, { weights: 'fp16' }));
  const set = { ...m.pipeline.encoderSet, long: 'chunk' as const };
  const text = await series('fp16 text encoding', 1, 3, () => buildConditioning(set, { prompt: PROMPT, negativePrompt: '', guidanceScale: 7.5, numImages: 1, height: 512, width: 512 }));
  const x = unetInputs(m.model.config.unet, 64, 64);
  const r = await series('fp16 UNet CFG 512² (batch 2, 64×64)', 1, o.runs, () => m.unet.run(x));
  const fig = { fp16_convert_s: convertS, fp16_load_s: loadS, fp16_text_encoding_s: text.meanS, fp16_unet_step_cfg_512_s: r.meanS, fp16_peak_rss_512_gb: peakRssGB() };
  await m.release();
  return { figures: fig, details: { fp16_unet_512: r, fp16_text_encoding: text } };
}

/** A full 1024² text-to-image run (2 steps) with `--weights fp16`, for its peak RSS and step time. */
export async function phaseFp16At1024(o: BenchOptions): Promise<PhaseResult> {
  const [m, loadS] = await timed('load with --weights fp16 for 1024²', () => open(o, { weights: 'fp16' }));
  const req = request({ task: 'text-to-image', width: 1024, height: 1024, steps: 2 });
  const [out, e2eS] = await timed('fp16 txt2img 1024² 2 steps end-to-end (runPipeline)', () => runPipeline(m.pipeline, req));
  const fig = {
    fp16_txt2img_1024_2steps_s: e2eS,
    fp16_unet_step_cfg_1024_s: out.timings.denoising / 2,
    fp16_vae_decode_1024_s: out.timings.vae_decode,
    peak_rss_1024_fp16_gb: peakRssGB(),
  };
  await m.release();
  return { figures: fig, details: { fp16_load_1024_s: round(loadS), fp16_txt2img_1024_timings: out.timings } };
}

/** `--quantize int8`: the UNet's transformer Linear layers in int8 (quantised once, timed on its own), 512² CFG call. */
export async function phaseInt8(o: BenchOptions): Promise<PhaseResult> {
  const model = await loadModel(o.modelDir, { cacheDir: cacheDir(o) });
  const [, quantS] = await timed('int8 quantisation of the UNet (once per checkpoint)', () =>
    ensureQuantized(model.weights.unet, { scheme: 'int8', cacheDir: cacheDir(o), fingerprint: model.fingerprint, source: model.source, component: 'unet' }),
  );
  const [m, loadS] = await timed('load with --quantize int8 (openModel)', () => open(o, { quantize: 'int8' }));
  const r = await series('int8 UNet CFG 512² (batch 2, 64×64)', 1, o.runs, () => m.unet.run(unetInputs(m.model.config.unet, 64, 64)));
  const fig = { int8_quantize_s: quantS, int8_load_s: loadS, int8_unet_step_cfg_512_s: r.meanS, int8_peak_rss_512_gb: peakRssGB() };
  await m.release();
  return { figures: fig, details: { int8_unet_512: r } };
}

/**
 * `--quantize int8-full`: the int8 Linear layers and the resnet convolutions in int8 (calibrated once: the first load
 * includes the calibration, the second reads it from the cache), 512² CFG call, and the calibration's SNR.
 */
export async function phaseInt8Full(o: BenchOptions): Promise<PhaseResult> {
  const model = await loadModel(o.modelDir, { cacheDir: cacheDir(o) });
  const calFile = calibrationFile(cacheDir(o), model.fingerprint, 'unet');
  fs.rmSync(calFile, { force: true });
  const [first, calLoadS] = await timed('load with --quantize int8-full, calibrating its convolutions (first load)', () => open(o, { quantize: 'int8-full' }));
  await first.release();
  const calibration = JSON.parse(fs.readFileSync(calFile, 'utf8')) as { snrDb: number };
  const [m, loadS] = await timed('load with --quantize int8-full (calibration cached)', () => open(o, { quantize: 'int8-full' }));
  const r = await series('int8-full UNet CFG 512² (batch 2, 64×64)', 1, o.runs, () => m.unet.run(unetInputs(m.model.config.unet, 64, 64)));
  const fig = {
    int8_full_first_load_s: calLoadS,
    int8_full_load_s: loadS,
    int8_full_conv_calibration_snr_db: calibration.snrDb,
    int8_full_unet_step_cfg_512_s: r.meanS,
    int8_full_peak_rss_512_gb: peakRssGB(),
  };
  await m.release();
  return { figures: fig, details: { int8_full_unet_512: r } };
}

/** A full 1024² text-to-image run (2 steps) with `--quantize int8` (fp32 weights elsewhere), for its peak RSS. */
export async function phaseInt8At1024(o: BenchOptions): Promise<PhaseResult> {
  const [m, loadS] = await timed('load with --quantize int8 for 1024²', () => open(o, { quantize: 'int8' }));
  const req = request({ task: 'text-to-image', width: 1024, height: 1024, steps: 2 });
  const [out, e2eS] = await timed('int8 txt2img 1024² 2 steps end-to-end (runPipeline)', () => runPipeline(m.pipeline, req));
  const fig = { int8_txt2img_1024_2steps_s: e2eS, int8_unet_step_cfg_1024_s: out.timings.denoising / 2, peak_rss_1024_int8_gb: peakRssGB() };
  await m.release();
  return { figures: fig, details: { int8_load_1024_s: round(loadS), int8_txt2img_1024_timings: out.timings } };
}

/**
 * `--vae-quantize int8`: the decoder's calibration (timed on its own), then the fp32 and the int8 decoder on the same
 * 64×64 latent in this process (decode time of each, and the int8 image's fidelity against fp32).
 */
export async function phaseVaeInt8(o: BenchOptions): Promise<PhaseResult> {
  const model = await loadModel(o.modelDir, { cacheDir: cacheDir(o) });
  const base = sessionSettings(o);
  const settings = { ...base, optimization: base.optimization ?? ('all' as const) };
  fs.rmSync(calibrationFile(cacheDir(o), model.fingerprint, 'vae_decoder'), { force: true });
  const [convs, calS] = await timed('int8 VAE decoder calibration (once per checkpoint)', () => decoderInt8Convs(model, decoderCalibrationInputs(model.config.vae), { cacheDir: cacheDir(o), settings }));
  const cal = convs.calibration;
  const z = new TorchGenerator(12).randn(4 * 64 * 64).map((v) => v / model.config.vae.scalingFactor);
  const decode = async (label: string, layers: Partial<LayerBuilders>) => {
    const dec = await VaeDecoder.create(model, settings, layers);
    let image: Float32Array = new Float32Array();
    const r = await series(label, 1, 3, async () => (image = await dec.decode(z, 1, 64, 64)));
    await dec.release();
    return { r, image };
  };
  const fp = await decode('fp32 VAE decode 512² (this phase)', {});
  const q = await decode('int8 VAE decode 512²', int8ConvLayers(convs));
  let levels = 0;
  const to8 = (v: number) => Math.round((Math.min(1, Math.max(-1, v)) + 1) * 127.5);
  for (let i = 0; i < fp.image.length; i++) levels += Math.abs(to8(fp.image[i]) - to8(q.image[i]));
  const fig = {
    vae_int8_calibration_s: calS,
    vae_int8_calibration_snr_db: cal.snrDb,
    vae_decode_512_int8_s: q.r.meanS,
    vae_decode_512_fp32_same_phase_s: fp.r.meanS,
    vae_int8_decode_speedup: fp.r.meanS / q.r.meanS,
    vae_int8_snr_db: snrDb(fp.image, q.image),
    vae_int8_mean_abs_8bit_levels: levels / fp.image.length,
  };
  return { figures: fig, details: { vae_decode_512_int8: q.r, vae_decode_512_fp32_same_phase: fp.r, vae_int8_convs: convs.size } };
}

/**
 * The fastest CPU configuration (`--quantize int8-full --vae-quantize int8`) against fp32 on the same request: the
 * benchmark's img2img 512² (4 denoising steps) end to end after a warm-up run, and the final image's fidelity.
 */
export async function phaseFastest(o: BenchOptions): Promise<PhaseResult> {
  const req = request({ task: 'image-to-image', width: 512, height: 512, steps: 8, strength: 0.5, image: randomImage(512, 512, 13) });
  const e2e = async (label: string, extra: Pick<EngineSettings, 'quantize' | 'vaeQuantize'>) => {
    const [m, loadS] = await timed(`load (${label})`, () => open(o, extra));
    await timed(`img2img 512² warm-up (${label})`, () => runPipeline(m.pipeline, req));
    const [out, s] = await timed(`img2img 512² end-to-end (${label})`, () => runPipeline(m.pipeline, req));
    await m.release();
    return { out, s, loadS };
  };
  const fp = await e2e('fp32', {});
  const fast = await e2e('--quantize int8-full --vae-quantize int8', { quantize: 'int8-full', vaeQuantize: 'int8' });
  let levels = 0;
  const a = fp.out.images[0].data;
  const b = fast.out.images[0].data;
  for (let i = 0; i < a.length; i++) levels += Math.abs(a[i] - b[i]);
  const fig = {
    fastest_img2img_512_4steps_s: fast.s,
    img2img_512_4steps_fp32_same_phase_s: fp.s,
    fastest_img2img_speedup: fp.s / fast.s,
    fastest_image_snr_db: snrDb(fp.out.imagesFloat, fast.out.imagesFloat),
    fastest_image_mean_abs_8bit_levels: levels / a.length,
  };
  return { figures: fig, details: { fastest_timings: fast.out.timings, fp32_timings: fp.out.timings, fastest_load_s: round(fast.loadS), fp32_load_s: round(fp.loadS) } };
}

/** A 1024² text-to-image run (2 steps) in fp32 as `atelier generate` runs it: one-shot, networks created and released in turn. */
export async function phaseOneShot1024(o: BenchOptions): Promise<PhaseResult> {
  const [m, loadS] = await timed('one-shot open (text encoders only; UNet and VAE when first run)', () =>
    open(o, { oneShot: true }),
  );
  const req = request({ task: 'text-to-image', width: 1024, height: 1024, steps: 2 });
  const [out, e2eS] = await timed('one-shot txt2img 1024² 2 steps end-to-end (runPipeline)', () => runPipeline(m.pipeline, req));
  const fig = { oneshot_txt2img_1024_2steps_s: e2eS, peak_rss_1024_oneshot_gb: peakRssGB() };
  await m.release();
  return { figures: fig, details: { oneshot_open_1024_s: round(loadS), oneshot_txt2img_1024_timings: out.timings } };
}

/** The built-in tiny random model, end-to-end 512² text-to-image, 25 steps. */
export async function phaseTiny(o: BenchOptions): Promise<PhaseResult> {
  const dir = await ensureDefaultTestModel(o.benchDir);
  const [m, loadS] = await timed('tiny model load', () => open(o, {}, dir, path.join(o.benchDir, 'tiny')));
  const req = request({ task: 'text-to-image', width: 512, height: 512, steps: 25 });
  const [, firstS] = await timed('tiny txt2img 512² 25 steps (first)', () => runPipeline(m.pipeline, req));
  const [out, s] = await timed('tiny txt2img 512² 25 steps (warm)', () => runPipeline(m.pipeline, req));
  await m.release();
  return { figures: { tiny_e2e_s: s, tiny_e2e_first_s: firstS, tiny_load_s: loadS }, details: { tiny_model: dir, tiny_timings: out.timings } };
}

export const PHASES = {
  gemm: phaseGemm,
  cold: phaseColdLoad,
  main512: phaseMain512,
  plain: phasePlainUNet,
  r1024: phase1024,
  fp16: phaseFp16,
  fp16_1024: phaseFp16At1024,
  int8: phaseInt8,
  int8_1024: phaseInt8At1024,
  int8_full: phaseInt8Full,
  vae_int8: phaseVaeInt8,
  fastest: phaseFastest,
  oneshot_1024: phaseOneShot1024,
  tiny: phaseTiny,
} as const;
export type PhaseName = keyof typeof PHASES;

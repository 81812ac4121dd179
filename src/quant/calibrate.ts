/**
 * Calibration of a network's int8 resnet convolutions (src/quant/int8-conv.ts), once per checkpoint and network:
 * the network with statistics outputs runs on the calibration runs' inputs (ranges), then the network with the int8
 * convolutions runs on the same inputs and its output is compared with the first one's (SNR). Both are cached
 * (src/quant/calibration-cache.ts); a checkpoint below the SNR floor is refused with an error naming the setting
 * (its activations do not suit per-tensor int8) — never a silent fallback to fp32. The inputs are made by the caller
 * (src/engine/calibration-inputs.ts) and asked for only when a calibration runs.
 */
import { AtelierError } from '../contract/errors.ts';
import type { TensorIn } from '../onnx/session.ts';
import type { LayerBuilders } from '../networks/blocks.ts';
import { NetworkSession, type BuiltNetwork, type SessionSettings } from '../networks/runtime.ts';
import type { TensorRef } from '../weights/types.ts';
import { readCalibration, writeCalibration, type Calibration } from './calibration-cache.ts';
import { convStatsLayers, mergeStats, statNames, type ConvStats } from './conv-stats.ts';
import { int8ConvLayers, int8Convs, type Int8Conv, type Int8Convs } from './int8-conv.ts';
import { snrDb } from './snr.ts';

/**
 * Below this int8-vs-fp32 SNR on the calibration batch the int8 network is refused: 20 dB = an rms error of a tenth
 * of the output's standard deviation. Measured (README "Performance"): random-weight full-size SDXL VAE decoder
 * 34.6 dB, the oracle's tiny VAE (32–64 channels) 23.2 dB.
 */
export const MIN_SNR_DB = 20;

/**
 * The feeds of the calibration runs, each shaped like one production call — the input scale is per tensor, so
 * samples that never share a call in production must not share one here. Called only when a calibration runs.
 */
export type CalibrationInputs = () => Promise<Record<string, TensorIn>[]> | Record<string, TensorIn>[];

/** One network's calibration: how to build it, which output to compare, and the refusal's wording. */
export interface CalibrationSpec {
  /** cache file stem, e.g. `vae_decoder`, `unet` */
  network: string;
  /** the setting and value that asked for it, for the refusal message, e.g. `--vae-quantize`, `int8` */
  setting: string;
  value: string;
  /** error `field` of the refusal */
  field: string;
  /** what the user reads, e.g. "VAE decoder" */
  what: string;
  /** the settings to use instead, for the refusal message, e.g. `"off"` */
  instead: string;
  modules: readonly string[];
  /** the weights the int8 convolutions are quantised from */
  weights: ReadonlyMap<string, TensorRef>;
  /** the network with these convolution hooks */
  build(layers: Partial<LayerBuilders>): BuiltNetwork;
  output: string;
}

/** Run every feed through one session of `built`; the outputs of each run. */
async function runAll(built: BuiltNetwork, settings: SessionSettings, feeds: readonly Record<string, TensorIn>[]) {
  const session = await NetworkSession.create(built, { ...settings, lazy: false });
  try {
    const outs = [];
    for (const f of feeds) outs.push(await session.run(f));
    return outs;
  } finally {
    await session.release();
  }
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), (at += p.length));
  return out;
}

/** Calibrate now: ranges from the statistics runs, then the int8 network's SNR over the same runs (and its convolutions). */
async function calibrate(spec: CalibrationSpec, inputs: CalibrationInputs, settings: SessionSettings = {}): Promise<{ calibration: Calibration; convs: Map<string, Int8Conv> }> {
  const feeds = await inputs();
  const stats = await runAll(spec.build(convStatsLayers(new Set(spec.modules))), settings, feeds);
  const runs = stats.map((out) => {
    const value = (name: string) => (out[name].data as Float32Array)[0];
    const run: Record<string, ConvStats> = {};
    for (const m of spec.modules) {
      const n = statNames(m);
      run[m] = { r: value(n.r), lo: value(n.lo), hi: value(n.hi) };
    }
    return run;
  });
  const ranges = mergeStats(runs);
  const convs = await int8Convs(spec.weights, ranges);
  const int8 = await runAll(spec.build(int8ConvLayers(convs)), settings, feeds);
  const output = (outs: typeof stats) => concat(outs.map((o) => o[spec.output].data as Float32Array));
  const snr = snrDb(output(stats), output(int8));
  return { calibration: { ranges, snrDb: Math.min(snr, 999) }, convs };
}

export interface CalibratedOptions {
  cacheDir: string;
  fingerprint: string;
  /** the checkpoint path (recorded in the cache folder) */
  source: string;
  settings?: SessionSettings;
  /** refusal threshold (tests); default MIN_SNR_DB */
  minSnrDb?: number;
}

/** The int8 convolutions of `spec`: calibration from the cache (or calibrated now on `inputs` and cached), weights quantised. */
export async function calibratedInt8Convs(
  spec: CalibrationSpec,
  inputs: CalibrationInputs,
  opts: CalibratedOptions,
): Promise<Int8Convs & { calibration: Calibration; calibrated: boolean }> {
  const cached = await readCalibration(opts, spec.network, spec.modules);
  const fresh = cached ? undefined : await calibrate(spec, inputs, opts.settings);
  if (fresh) await writeCalibration(opts, spec.network, fresh.calibration);
  const calibration = cached ?? fresh!.calibration;
  const min = opts.minSnrDb ?? MIN_SNR_DB;
  if (!(calibration.snrDb >= min)) {
    throw new AtelierError(
      'BAD_REQUEST',
      `${spec.setting} "${spec.value}": this checkpoint's ${spec.what} loses too much with int8 convolutions (SNR ${calibration.snrDb.toFixed(1)} dB against fp32 on the calibration batch, minimum ${min} dB); use ${spec.instead}`,
      { field: spec.field },
    );
  }
  const convs = fresh?.convs ?? (await int8Convs(spec.weights, calibration.ranges)); // quantised once either way
  return Object.assign(convs, { calibration, calibrated: !cached });
}

/**
 * Calibration of a network's int8 resnet convolutions (src/networks/int8-conv.ts), once per checkpoint and network:
 * the network with statistics outputs runs on a calibration batch (ranges), then the network with the int8
 * convolutions runs on the same batch and its output is compared with the first one's (SNR). Both are cached in
 * `<cacheDir>/<fingerprint>/<network>-int8-calibration.json`; a checkpoint below the SNR floor is refused with an
 * error naming the setting (its activations do not suit per-tensor int8) — never a silent fallback to fp32.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import type { TensorIn } from '../onnx/session.ts';
import type { TensorRef } from '../weights/types.ts';
import { int8Convs, mergeStats, MARGIN, snrDb, statNames, type ConvMode, type ConvRange, type Int8Conv, type Int8Convs } from './int8-conv.ts';
import { NetworkSession, type BuiltNetwork, type SessionSettings } from './runtime.ts';

/** Bump when a calibration procedure or the stored layout changes. */
const CALIBRATION_VERSION = 3;

/**
 * Below this int8-vs-fp32 SNR on the calibration batch the int8 network is refused: 20 dB = an rms error of a tenth
 * of the output's standard deviation. Measured (README "Performance"): random-weight full-size SDXL VAE decoder
 * 34.6 dB, the oracle's tiny VAE (32–64 channels) 23.2 dB.
 */
export const MIN_SNR_DB = 20;

/** A checkpoint's calibration of one network, as cached. */
export interface Calibration {
  ranges: Map<string, ConvRange>;
  /** int8 vs fp32 on the calibration batch: 10·log10(signal variance / squared error) of the network's output */
  snrDb: number;
}

interface CalibrationFile {
  version: number;
  fingerprint: string;
  margin: number;
  snrDb: number;
  ranges: Record<string, ConvRange>;
}

/** Where a checkpoint's calibration of `network` lives in the cache. */
export function calibrationFile(cacheDir: string, fingerprint: string, network: string): string {
  return path.join(path.resolve(cacheDir), fingerprint, `${network}-int8-calibration.json`);
}

/** The cached calibration of a checkpoint, or null when absent, stale or unreadable. */
export async function readCalibration(file: string, fingerprint: string, modules: readonly string[]): Promise<Calibration | null> {
  let parsed: CalibrationFile;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8')) as CalibrationFile;
  } catch {
    return null;
  }
  if (parsed.version !== CALIBRATION_VERSION || parsed.fingerprint !== fingerprint || parsed.margin !== MARGIN || typeof parsed.snrDb !== 'number') return null;
  const ranges = new Map<string, ConvRange>();
  for (const m of modules) {
    const r = parsed.ranges?.[m];
    if (!r || !Number.isFinite(r.lo) || !Number.isFinite(r.hi)) return null;
    ranges.set(m, { lo: r.lo, hi: r.hi });
  }
  return { ranges, snrDb: parsed.snrDb };
}

export async function writeCalibration(file: string, fingerprint: string, cal: Calibration): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const body: CalibrationFile = { version: CALIBRATION_VERSION, fingerprint, margin: MARGIN, snrDb: cal.snrDb, ranges: Object.fromEntries(cal.ranges) };
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(body, null, 1));
  await rename(tmp, file);
}


/** One network's calibration: how to build it, what to feed it, which output to compare. */
export interface CalibrationSpec {
  /** cache file stem, e.g. `vae_decoder`, `unet-int8` */
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
  build(mode: ConvMode): BuiltNetwork;
  /**
   * the calibration runs (built only when a calibration runs), each shaped like one production call — the input
   * scale is per tensor, so samples that never share a call in production must not share one here
   */
  feeds(): Promise<Record<string, TensorIn>[]> | Record<string, TensorIn>[];
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
async function calibrate(spec: CalibrationSpec, settings: SessionSettings = {}): Promise<{ calibration: Calibration; convs: Map<string, Int8Conv> }> {
  const feeds = await spec.feeds();
  const stats = await runAll(spec.build({ calibrate: new Set(spec.modules) }), settings, feeds);
  const runs = stats.map((out) => {
    const value = (name: string) => (out[name].data as Float32Array)[0];
    const run: Record<string, { r: number; lo: number; hi: number }> = {};
    for (const m of spec.modules) {
      const n = statNames(m);
      run[m] = { r: value(n.r), lo: value(n.lo), hi: value(n.hi) };
    }
    return run;
  });
  const ranges = mergeStats(runs);
  const convs = await int8Convs(spec.weights, ranges);
  const int8 = await runAll(spec.build({ int8: convs }), settings, feeds);
  const output = (outs: typeof stats) => concat(outs.map((o) => o[spec.output].data as Float32Array));
  const snr = snrDb(output(stats), output(int8));
  return { calibration: { ranges, snrDb: Math.min(snr, 999) }, convs };
}

export interface CalibratedOptions {
  cacheDir: string;
  fingerprint: string;
  settings?: SessionSettings;
  /** refusal threshold (tests); default MIN_SNR_DB */
  minSnrDb?: number;
}

/** The int8 convolutions of `spec`: calibration from the cache (or calibrated now and cached), weights quantised. */
export async function calibratedInt8Convs(spec: CalibrationSpec, opts: CalibratedOptions): Promise<Int8Convs & { calibration: Calibration; calibrated: boolean }> {
  const file = calibrationFile(opts.cacheDir, opts.fingerprint, spec.network);
  const cached = await readCalibration(file, opts.fingerprint, spec.modules);
  const fresh = cached ? undefined : await calibrate(spec, opts.settings);
  if (fresh) await writeCalibration(file, opts.fingerprint, fresh.calibration);
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

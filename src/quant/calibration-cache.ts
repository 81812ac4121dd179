/**
 * A checkpoint's calibration of one network's int8 convolutions, kept in the derived-weights cache
 * (src/weights/derived-cache.ts) as `<network>-int8-calibration.json`: the output ranges per module and the int8
 * network's SNR on the calibration runs.
 */
import { DerivedCache, derivedFile, type DerivedCacheKey } from '../weights/derived-cache.ts';
import { MARGIN, type ConvRange } from './int8-conv.ts';

/** Bump when a calibration procedure or the stored layout changes. */
const CALIBRATION_VERSION = 3;

/** A checkpoint's calibration of one network, as cached. */
export interface Calibration {
  ranges: Map<string, ConvRange>;
  /** int8 vs fp32 on the calibration batch: 10·log10(signal variance / squared error) of the network's output */
  snrDb: number;
}

function fileName(network: string): string {
  return `${network}-int8-calibration.json`;
}

/** Where a checkpoint's calibration of `network` lives in the cache. */
export function calibrationFile(cacheDir: string, fingerprint: string, network: string): string {
  return derivedFile(cacheDir, fingerprint, fileName(network));
}

/** The cached calibration of `network` covering `modules`, or null when absent, stale or unreadable. */
export async function readCalibration(key: DerivedCacheKey, network: string, modules: readonly string[]): Promise<Calibration | null> {
  const parsed = await new DerivedCache(key).readJson(fileName(network), CALIBRATION_VERSION);
  if (!parsed || parsed.margin !== MARGIN || typeof parsed.snrDb !== 'number') return null;
  const stored = (typeof parsed.ranges === 'object' && parsed.ranges !== null ? parsed.ranges : {}) as Record<string, Partial<ConvRange> | undefined>;
  const ranges = new Map<string, ConvRange>();
  for (const m of modules) {
    const r = stored[m];
    if (!r || !Number.isFinite(r.lo) || !Number.isFinite(r.hi)) return null;
    ranges.set(m, { lo: r.lo!, hi: r.hi! });
  }
  return { ranges, snrDb: parsed.snrDb };
}

export async function writeCalibration(key: DerivedCacheKey, network: string, cal: Calibration): Promise<void> {
  await new DerivedCache(key).writeJson(fileName(network), CALIBRATION_VERSION, { margin: MARGIN, snrDb: cal.snrDb, ranges: Object.fromEntries(cal.ranges) });
}

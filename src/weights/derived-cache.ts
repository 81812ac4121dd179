/**
 * The one cache of files derived from a checkpoint (fp32/fp16 copies of components, quantised weights, calibration
 * results). Layout: `<cacheDir>/<fingerprint>/` holds every file derived from one version of one source, plus
 * `source.json` naming the source, so that a folder of an older fingerprint of the same source is removed when a
 * new one is written. A file is trusted only when it was written for this fingerprint with the same stamp (format
 * version, scheme, …) and, for tensors, holds exactly the tensors the writer would write (names, dtypes, stored
 * shapes); anything else (absent, stale, corrupt, partial) reads as "not cached" and is rebuilt. Every write goes
 * through a temporary file renamed at the end.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import { readSafetensorsHeader, writeSafetensors, type SafetensorsHeader, type WriteEntry } from './safetensors.ts';
import type { TensorRef } from './types.ts';

/** safetensors metadata key holding the source fingerprint */
const FINGERPRINT_KEY = 'atelier_source_fingerprint';
const SOURCE_FILE = 'source.json';

/** Hash of the source path and the size + mtime of every weight file: a changed source gets a new cache folder. */
export async function sourceFingerprint(source: string, files: readonly string[]): Promise<string> {
  const stamps: [string, number, number][] = [];
  for (const f of [...files].sort()) {
    const s = await stat(f);
    stamps.push([path.relative(source, f) || path.basename(f), s.size, s.mtimeMs]);
  }
  return createHash('sha256').update(JSON.stringify({ source: path.resolve(source), stamps })).digest('hex').slice(0, 16);
}

/** The stored shape of a ref (a transposed 2-D matrix is stored [shape[1], shape[0]]). */
export function storedShape(t: TensorRef): number[] {
  return t.transposed ? [t.shape[1], t.shape[0]] : t.shape;
}

/** Where the derived file `name` of the source with `fingerprint` lives: `<cacheDir>/<fingerprint>/<name>`. */
export function derivedFile(cacheDir: string, fingerprint: string, name: string): string {
  return path.join(path.resolve(cacheDir), fingerprint, name);
}

/** Which checkpoint a cache serves. */
export interface DerivedCacheKey {
  /** cache root (`data/cache` by default) */
  cacheDir: string;
  /** `SdxlModel.fingerprint` of the source */
  fingerprint: string;
  /** the checkpoint path (recorded in `source.json`) */
  source: string;
}

/** Metadata a derived file must carry besides the fingerprint, e.g. its format version and scheme. */
export type Stamp = Readonly<Record<string, string>>;

/** The derived files of one checkpoint version: `<cacheDir>/<fingerprint>/<name>`. */
export class DerivedCache {
  readonly cacheDir: string;
  readonly fingerprint: string;
  readonly source: string;
  /** the folder of this fingerprint */
  readonly root: string;

  constructor(key: DerivedCacheKey) {
    this.cacheDir = path.resolve(key.cacheDir);
    this.fingerprint = key.fingerprint;
    this.source = path.resolve(key.source);
    this.root = path.join(this.cacheDir, key.fingerprint);
  }

  /** Where a derived file of this checkpoint lives. */
  file(name: string): string {
    return derivedFile(this.cacheDir, this.fingerprint, name);
  }

  /**
   * The header of the tensor file `name` when it belongs to this fingerprint, carries `stamp`, and holds exactly
   * `entries` (names, dtypes, shapes as they would be written); else null.
   */
  async openTensors(name: string, entries: readonly Pick<WriteEntry, 'name' | 'dtype' | 'shape'>[], stamp: Stamp = {}): Promise<SafetensorsHeader | null> {
    let header: SafetensorsHeader;
    try {
      header = await readSafetensorsHeader(this.file(name));
    } catch {
      return null;
    }
    const m = header.metadata;
    if (m[FINGERPRINT_KEY] !== this.fingerprint || Object.entries(stamp).some(([k, v]) => m[k] !== v)) return null;
    if (header.tensors.size !== entries.length) return null;
    for (const e of entries) {
      const t = header.tensors.get(e.name);
      if (!t || t.dtype !== e.dtype || t.shape.join() !== e.shape.join()) return null;
    }
    return header;
  }

  /**
   * The tensor file `name`: the cached one when valid (`openTensors`), else written now from `entries` (their data
   * produced tensor by tensor) and read back. `created` tells which.
   */
  async ensureTensors(name: string, entries: readonly WriteEntry[], stamp: Stamp = {}): Promise<{ header: SafetensorsHeader; created: boolean }> {
    const cached = await this.openTensors(name, entries, stamp);
    if (cached) return { header: cached, created: false };
    await this.claim();
    await writeSafetensors(this.file(name), [...entries], { [FINGERPRINT_KEY]: this.fingerprint, ...stamp, source: this.source });
    const fresh = await this.openTensors(name, entries, stamp);
    if (!fresh) throw new AtelierError('INTERNAL', `derived cache ${this.file(name)} unreadable right after writing`);
    return { header: fresh, created: true };
  }

  /** The JSON file `name` when it was written for this fingerprint at `version`; else null. */
  async readJson(name: string, version: number): Promise<Record<string, unknown> | null> {
    try {
      const parsed: unknown = JSON.parse(await readFile(this.file(name), 'utf8'));
      if (typeof parsed !== 'object' || parsed === null) return null;
      const body = parsed as Record<string, unknown>;
      return body.version === version && body.fingerprint === this.fingerprint ? body : null;
    } catch {
      return null;
    }
  }

  /** Writes `body` as the JSON file `name`, stamped with `version` and the fingerprint. */
  async writeJson(name: string, version: number, body: Readonly<Record<string, unknown>>): Promise<void> {
    await this.claim();
    const file = this.file(name);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ version, fingerprint: this.fingerprint, ...body }, null, 1));
    await rename(tmp, file);
  }

  /** Before a write: the folder exists, names its source, and older fingerprints' folders of the source are gone. */
  private async claim(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await writeFile(path.join(this.root, SOURCE_FILE), JSON.stringify({ source: this.source }));
    const entries = await readdir(this.cacheDir).catch(() => [] as string[]);
    for (const name of entries) {
      if (name === this.fingerprint) continue;
      const json = await readFile(path.join(this.cacheDir, name, SOURCE_FILE), 'utf8').catch(() => null);
      if (json === null) continue;
      try {
        if ((JSON.parse(json) as { source?: string }).source === this.source) await rm(path.join(this.cacheDir, name), { recursive: true, force: true });
      } catch {
        // not ours
      }
    }
  }
}

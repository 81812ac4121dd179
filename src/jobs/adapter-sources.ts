/**
 * Where a LoRA / embedding comes from, in one place.
 *
 * Submit time, resolveAdapterSource: a `loras[].path` / `embeddings[].path` value is either a URL the server fetches
 * (`http(s)://`, `data:`) or a name resolved now to a file inside the server's LoRA or embedding folders, and
 * nowhere else (no absolute paths, no `..`, no symlink that leads out). The result is stored with the job.
 *
 * Run time, AdapterFiles.materialize: a stored source becomes a local file; URLs are fetched through the download
 * cache (same SSRF guard, byte limit and timeout as every server-side fetch) and stay pinned until released.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import type { AllowList } from '../images/address-guard.ts';
import type { DownloadCache } from '../images/download-cache.ts';
import type { AdapterSource } from './queue.ts';

export type { AdapterSource } from './queue.ts';

export type AdapterKind = 'LoRA' | 'embedding';

/** The folders local adapter names resolve in (built by api/adapters.ts from the models folder). */
export interface AdapterDirs {
  /** real paths of the LoRA folders */
  loras: string[];
  embeddings: string[];
  /** names found by discoverModels (loose files classified by their keys included) → file */
  known: { loras: Map<string, string>; embeddings: Map<string, string> };
}

/** True for values the server fetches (`http(s)://`, `data:`) rather than looks up locally. */
export function isRemoteAdapter(value: string): boolean {
  return /^(https?:\/\/|data:)/i.test(value);
}

/**
 * Submit time: the source of the adapter `value` names — a URL (checked to parse; fetched at run time) or the
 * absolute path of a local file inside `dirs`' folders of its kind. Throws URL_REFUSED for a malformed URL,
 * INVALID_INPUT for an unsafe name, ADAPTER_INVALID when no file matches; each naming `field`.
 */
export function resolveAdapterSource(value: string, dirs: AdapterDirs, kind: AdapterKind, field: string): AdapterSource {
  if (!isRemoteAdapter(value)) {
    const [folders, known] = kind === 'LoRA' ? [dirs.loras, dirs.known.loras] : [dirs.embeddings, dirs.known.embeddings];
    return { kind: 'file', source: resolveLocalAdapter(value, folders, field, kind, known) };
  }
  if (value.toLowerCase().startsWith('data:')) return { kind: 'url', source: value };
  try {
    new URL(value);
  } catch (cause) {
    throw new AtelierError('URL_REFUSED', `${field}: ${JSON.stringify(value.slice(0, 100))} is not a valid URL`, { field, cause });
  }
  return { kind: 'url', source: value };
}

/**
 * The absolute path of `name`: a name discoverModels listed, or a file (optionally without `.safetensors`)
 * inside one of `dirs`. Throws INVALID_INPUT naming `field` for unsafe names, ADAPTER_INVALID when nothing matches.
 */
export function resolveLocalAdapter(
  name: string,
  dirs: readonly string[],
  field: string,
  kind: AdapterKind,
  known: ReadonlyMap<string, string> = new Map(),
): string {
  const refuse = (why: string) =>
    new AtelierError('INVALID_INPUT', `${field}: ${JSON.stringify(name)} ${why}; give an http(s) URL or a file name inside the server's ${kind} folder`, {
      field,
    });
  if (/^[a-z][a-z0-9+.-]*:/i.test(name) && !/^[a-z]:[\\/]/i.test(name)) throw refuse('uses a URL scheme that is not accepted');
  if (name.includes('\0')) throw refuse('contains a NUL character');
  if (path.isAbsolute(name) || /^[a-z]:/i.test(name) || name.startsWith('\\')) throw refuse('is an absolute path');
  if (name.split(/[\\/]/).some((seg) => seg === '..')) throw refuse('contains ".."');
  if (name.includes('\\')) throw refuse('contains a backslash');
  const listed = known.get(name.replace(/\.safetensors$/i, ''));
  if (listed) return listed;
  if (dirs.length === 0) {
    throw new AtelierError('ADAPTER_INVALID', `${field}: ${JSON.stringify(name)} names a local ${kind}, but this server has no ${kind} folder (see --models-dir)`, {
      field,
    });
  }
  const names = /\.safetensors$/i.test(name) ? [name] : [name, `${name}.safetensors`];
  for (const dir of dirs) {
    for (const n of names) {
      const candidate = path.join(dir, n);
      let real: string;
      try {
        real = fs.realpathSync(candidate);
      } catch {
        continue;
      }
      if (!real.startsWith(dir + path.sep)) throw refuse(`leads outside the ${kind} folder (through a symbolic link)`);
      if (!fs.statSync(real).isFile()) continue;
      return real;
    }
  }
  throw new AtelierError('ADAPTER_INVALID', `${field}: no ${kind} named ${JSON.stringify(name)} in ${dirs.join(', ')}`, { field });
}

/** A local adapter file for one run; release() once the run is over (a fetched file may be evicted again). */
export interface AdapterFile {
  path: string;
  release(): void;
}

export interface AdapterFetchLimits {
  maxBytes: number;
  timeoutMs: number;
  maxRedirects: number;
}

/** Full-size SDXL LoRAs run to hundreds of MB; a slow link gets ten minutes. */
export const ADAPTER_FETCH_LIMITS: AdapterFetchLimits = { maxBytes: 2 * 1024 ** 3, timeoutMs: 10 * 60_000, maxRedirects: 5 };

/** Run time: stored adapter sources → local files, URLs fetched into (and leased from) the download cache. */
export class AdapterFiles {
  constructor(
    private readonly cache: DownloadCache,
    private readonly allow: AllowList,
    private readonly limits: AdapterFetchLimits = ADAPTER_FETCH_LIMITS,
  ) {}

  /** The local file behind `src` (`field` names it in errors); a URL is fetched on a cache miss and pinned until release(). */
  async materialize(src: AdapterSource, field: string, signal?: AbortSignal): Promise<AdapterFile> {
    if (src.kind === 'file') return { path: src.source, release: () => {} };
    const lease = await this.cache.acquire(src.source, { ...this.limits, allow: this.allow, field, ...(signal ? { signal } : {}) });
    return { path: lease.path, release: () => lease.release() };
  }
}

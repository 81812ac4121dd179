/**
 * Content-addressed disk cache for remote adapter files (LoRA / embedding URLs).
 *
 * Layout in `dir`: `<sha256>.safetensors` per distinct content, `index.json` mapping URL → hash plus per-file size
 * and last use. Several URLs with the same bytes share one file. Writes are atomic (temp file + rename), so a crash
 * never leaves a half-written file under a final name. Eviction is least-recently-used by total size; files leased
 * to a caller (between `acquire` and `release`) and the file a `get` is about to return are never evicted.
 * One process owns a cache directory; concurrent calls within the process are serialised on the index.
 * Downloads go through fetchBytes (same SSRF guard, byte limit, timeout); the per-file limit is
 * min(opts.maxBytes, cache maxBytes).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import { fetchBytes, type FetchOptions } from './fetch.ts';

const INDEX_FILE = 'index.json';
const TMP_PREFIX = '.tmp-';
const EXT = '.safetensors';
const HASH_NAME = /^[0-9a-f]{64}\.safetensors$/;
/** URLs longer than this (data: URIs) are indexed by their own sha256 */
const MAX_KEY_LENGTH = 2048;

interface FileEntry {
  size: number;
  /** logical clock of the last use, for LRU */
  lastUsed: number;
}

interface IndexData {
  version: 1;
  clock: number;
  urls: Record<string, string>;
  files: Record<string, FileEntry>;
}

interface Flight {
  promise: Promise<string>;
  /** callers waiting on this download; each gets one pin */
  waiters: number;
}

export interface CacheLease {
  /** absolute path of the cached file */
  path: string;
  hash: string;
  /** allow the file to be evicted again; idempotent */
  release(): void;
}

export class DownloadCache {
  readonly dir: string;
  readonly maxBytes: number;
  private index: IndexData | undefined;
  private loading: Promise<IndexData> | undefined;
  private lock: Promise<void> = Promise.resolve();
  private readonly pins = new Map<string, number>();
  private readonly inFlight = new Map<string, Flight>();
  private tmpCounter = 0;

  constructor(dir: string, maxBytes: number) {
    if (!(Number.isInteger(maxBytes) && maxBytes > 0)) {
      throw new AtelierError('INTERNAL', `DownloadCache maxBytes must be a positive integer, got ${maxBytes}`);
    }
    this.dir = path.resolve(dir);
    this.maxBytes = maxBytes;
  }

  /** Local path of the file behind `url`, downloading it on a miss. The file is pinned only during the call. */
  async get(url: string, opts: FetchOptions): Promise<string> {
    const lease = await this.acquire(url, opts);
    lease.release();
    return lease.path;
  }

  /** Like get, but the file stays pinned (never evicted) until `release()`. */
  async acquire(url: string, opts: FetchOptions): Promise<CacheLease> {
    const key = indexKey(url);
    let hash = await this.locked(async () => {
      const idx = await this.load();
      const h = idx.urls[key];
      if (h && idx.files[h] && (await this.fileIntact(h, idx.files[h]!.size))) {
        this.pin(h);
        idx.files[h]!.lastUsed = ++idx.clock;
        await this.save();
        return h;
      }
      return undefined;
    });
    if (!hash) hash = await this.download(url, key, opts); // pinned for this caller
    let released = false;
    const h = hash;
    return {
      path: this.filePath(h),
      hash: h,
      release: () => {
        if (released) return;
        released = true;
        this.unpin(h);
      },
    };
  }

  /** Total bytes of the cached files, per the index. */
  async totalBytes(): Promise<number> {
    const idx = await this.locked(() => this.load());
    return Object.values(idx.files).reduce((s, f) => s + f.size, 0);
  }

  /** Download (one fetch for concurrent misses of the same URL); resolves with the hash pinned once per caller. */
  private download(url: string, key: string, opts: FetchOptions): Promise<string> {
    let flight = this.inFlight.get(key);
    if (!flight) {
      const created: Flight = { waiters: 0, promise: Promise.resolve('') };
      this.inFlight.set(key, created);
      created.promise = this.fetchAndStore(url, key, opts, created);
      flight = created;
    }
    flight.waiters++;
    return flight.promise;
  }

  private async fetchAndStore(url: string, key: string, opts: FetchOptions, flight: Flight): Promise<string> {
    let bytes: Buffer;
    try {
      bytes = (await fetchBytes(url, { ...opts, maxBytes: Math.min(opts.maxBytes, this.maxBytes) })).bytes;
    } catch (e) {
      this.inFlight.delete(key);
      throw e;
    }
    const hash = createHash('sha256').update(bytes).digest('hex');
    return this.locked(async () => {
      // Pin for every caller that joined this download, and close it to new joiners, in one synchronous step.
      const pins = flight.waiters;
      this.inFlight.delete(key);
      for (let i = 0; i < pins; i++) this.pin(hash);
      try {
        const idx = await this.load();
        if (!(await this.fileIntact(hash, bytes.length))) await this.writeAtomic(this.filePath(hash), bytes);
        idx.files[hash] = { size: bytes.length, lastUsed: ++idx.clock };
        idx.urls[key] = hash;
        await this.evict(idx);
        await this.save();
      } catch (e) {
        for (let i = 0; i < pins; i++) this.unpin(hash);
        throw e;
      }
      return hash;
    });
  }

  /** Remove least-recently-used unpinned files until the total fits maxBytes (pinned files may overshoot). */
  private async evict(idx: IndexData): Promise<void> {
    let total = Object.values(idx.files).reduce((s, f) => s + f.size, 0);
    if (total <= this.maxBytes) return;
    const candidates = Object.entries(idx.files)
      .filter(([h]) => !this.pins.has(h))
      .sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    for (const [h, entry] of candidates) {
      if (total <= this.maxBytes) break;
      await fs.rm(this.filePath(h), { force: true });
      delete idx.files[h];
      for (const [u, uh] of Object.entries(idx.urls)) if (uh === h) delete idx.urls[u];
      total -= entry.size;
    }
  }

  private async load(): Promise<IndexData> {
    if (this.index) return this.index;
    this.loading ??= this.readIndex();
    this.index = await this.loading;
    return this.index;
  }

  /** Read index.json, drop entries whose file is gone, adopt stray hash files, delete leftover temp files. */
  private async readIndex(): Promise<IndexData> {
    await fs.mkdir(this.dir, { recursive: true });
    let idx: IndexData = { version: 1, clock: 0, urls: {}, files: {} };
    try {
      const parsed = JSON.parse(await fs.readFile(path.join(this.dir, INDEX_FILE), 'utf8')) as IndexData;
      if (parsed.version === 1 && parsed.urls && parsed.files) idx = parsed;
    } catch {
      // missing or unreadable index: rebuilt from the files present
    }
    const names = await fs.readdir(this.dir);
    const present = new Map<string, number>();
    for (const name of names) {
      if (name.startsWith(TMP_PREFIX)) await fs.rm(path.join(this.dir, name), { force: true });
      else if (HASH_NAME.test(name)) present.set(name.slice(0, 64), (await fs.stat(path.join(this.dir, name))).size);
    }
    for (const [h, entry] of Object.entries(idx.files)) {
      if (present.get(h) !== entry.size) delete idx.files[h];
    }
    for (const [h, size] of present) idx.files[h] ??= { size, lastUsed: 0 };
    for (const [u, h] of Object.entries(idx.urls)) if (!idx.files[h]) delete idx.urls[u];
    return idx;
  }

  private async save(): Promise<void> {
    if (!this.index) return;
    await this.writeAtomic(path.join(this.dir, INDEX_FILE), Buffer.from(JSON.stringify(this.index)));
  }

  private async writeAtomic(target: string, bytes: Buffer): Promise<void> {
    const tmp = path.join(this.dir, `${TMP_PREFIX}${process.pid}-${++this.tmpCounter}`);
    try {
      await fs.writeFile(tmp, bytes, { flag: 'wx' });
      await fs.rename(tmp, target);
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw new AtelierError('INTERNAL', `could not write ${JSON.stringify(target)} in the download cache`, { cause: e });
    }
  }

  private async fileIntact(hash: string, size: number): Promise<boolean> {
    try {
      return (await fs.stat(this.filePath(hash))).size === size;
    } catch {
      return false;
    }
  }

  private filePath(hash: string): string {
    return path.join(this.dir, `${hash}${EXT}`);
  }

  private pin(hash: string): void {
    this.pins.set(hash, (this.pins.get(hash) ?? 0) + 1);
  }

  private unpin(hash: string): void {
    const n = (this.pins.get(hash) ?? 0) - 1;
    if (n > 0) this.pins.set(hash, n);
    else this.pins.delete(hash);
  }

  /** Run `fn` after every earlier locked call has finished (index mutations are serialised). */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}

function indexKey(url: string): string {
  return url.length > MAX_KEY_LENGTH ? `sha256:${createHash('sha256').update(url).digest('hex')}` : url;
}

// Real HTTP on 127.0.0.1 (allow-listed) and a real cache directory under the OS temp dir.
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import { parseAllowList } from './address-guard.ts';
import { DownloadCache } from './download-cache.ts';
import type { FetchOptions } from './fetch.ts';

const BODIES: Record<string, Buffer> = {
  '/a': Buffer.alloc(1000, 'a'),
  '/a-alias': Buffer.alloc(1000, 'a'),
  '/b': Buffer.alloc(1000, 'b'),
  '/c': Buffer.alloc(1000, 'c'),
  '/d': Buffer.alloc(1000, 'd'),
  '/slow': Buffer.alloc(700, 's'),
  '/big': Buffer.alloc(5000, 'x'),
};
const hits: Record<string, number> = {};
let server: http.Server;
let base = '';
let dir = '';

before(async () => {
  server = http.createServer((req, res) => {
    const p = req.url ?? '';
    hits[p] = (hits[p] ?? 0) + 1;
    const body = BODIES[p];
    if (!body) {
      res.writeHead(404);
      res.end();
      return;
    }
    const send = (): void => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.end(body);
    };
    if (p === '/slow') setTimeout(send, 100);
    else send();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-cache-'));
  for (const k of Object.keys(hits)) delete hits[k];
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const OPTS: FetchOptions = { maxBytes: 1 << 20, timeoutMs: 5000, maxRedirects: 2, allow: parseAllowList(['127.0.0.0/8']), field: 'loras[0].path' };
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const files = async (): Promise<string[]> => (await fs.readdir(dir)).sort();

describe('DownloadCache', () => {
  it('downloads on a miss, stores under the content hash, serves hits without the network', async () => {
    const cache = new DownloadCache(dir, 10_000);
    const p = await cache.get(`${base}/a`, OPTS);
    assert.equal(p, path.join(dir, `${sha(BODIES['/a']!)}.safetensors`));
    assert.deepEqual(await fs.readFile(p), BODIES['/a']);
    assert.equal(await cache.get(`${base}/a`, OPTS), p);
    assert.equal(hits['/a'], 1);
    assert.deepEqual(await files(), [`${sha(BODIES['/a']!)}.safetensors`, 'index.json']);
  });

  it('shares one file between URLs with the same bytes', async () => {
    const cache = new DownloadCache(dir, 10_000);
    const p1 = await cache.get(`${base}/a`, OPTS);
    const p2 = await cache.get(`${base}/a-alias`, OPTS);
    assert.equal(p1, p2);
    assert.equal(await cache.totalBytes(), 1000);
    const index = JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8'));
    assert.deepEqual(Object.keys(index.urls).sort(), [`${base}/a`, `${base}/a-alias`]);
  });

  it('evicts the least recently used file when over maxBytes', async () => {
    const cache = new DownloadCache(dir, 2500);
    const pa = await cache.get(`${base}/a`, OPTS);
    const pb = await cache.get(`${base}/b`, OPTS);
    await cache.get(`${base}/a`, OPTS); // a is now more recent than b
    const pc = await cache.get(`${base}/c`, OPTS);
    await assert.rejects(fs.stat(pb), { code: 'ENOENT' });
    await fs.stat(pa);
    await fs.stat(pc);
    assert.equal(await cache.totalBytes(), 2000);
    await cache.get(`${base}/b`, OPTS); // refetched, and now a is the oldest
    assert.equal(hits['/b'], 2);
    await assert.rejects(fs.stat(pa), { code: 'ENOENT' });
    assert.equal(await cache.totalBytes(), 2000);
  });

  it('never evicts a leased file, and evicts it once released', async () => {
    const cache = new DownloadCache(dir, 2500);
    const lease = await cache.acquire(`${base}/a`, OPTS);
    await cache.get(`${base}/b`, OPTS);
    await cache.get(`${base}/c`, OPTS); // a is the LRU but pinned: b goes instead
    await fs.stat(lease.path);
    assert.equal(hits['/b'], 1);
    await cache.get(`${base}/d`, OPTS); // over budget: c goes (a still pinned)
    await fs.stat(lease.path);
    lease.release();
    lease.release(); // idempotent
    await cache.get(`${base}/b`, OPTS);
    await assert.rejects(fs.stat(lease.path), { code: 'ENOENT' });
    assert.ok((await cache.totalBytes()) <= 2500);
  });

  it('fetches once for concurrent misses and leaks no pin', async () => {
    const cache = new DownloadCache(dir, 2500);
    const paths = await Promise.all(Array.from({ length: 5 }, () => cache.get(`${base}/slow`, OPTS)));
    assert.equal(new Set(paths).size, 1);
    assert.equal(hits['/slow'], 1);
    await cache.get(`${base}/a`, OPTS);
    await cache.get(`${base}/b`, OPTS); // 2700 bytes: the slow file (LRU) must be evictable
    await assert.rejects(fs.stat(paths[0]!), { code: 'ENOENT' });
  });

  it('persists the index and cleans up after a crash', async () => {
    const first = new DownloadCache(dir, 10_000);
    const p = await first.get(`${base}/a`, OPTS);
    assert.ok(!(await files()).some((f) => f.startsWith('.tmp-')), 'no temp files left');
    const again = new DownloadCache(dir, 10_000);
    assert.equal(await again.get(`${base}/a`, OPTS), p);
    assert.equal(hits['/a'], 1, 'served from the persisted index');

    // A crash mid-write leaves a temp file; a broken index is rebuilt from the files present.
    await fs.writeFile(path.join(dir, '.tmp-999-1'), 'partial');
    await fs.writeFile(path.join(dir, 'index.json'), '{ not json');
    const rebuilt = new DownloadCache(dir, 10_000);
    assert.equal(await rebuilt.totalBytes(), 1000, 'the hash file is adopted');
    assert.deepEqual(await files(), [path.basename(p), 'index.json']);
    assert.equal(await rebuilt.get(`${base}/a`, OPTS), p, 'same content, same file');
    assert.equal(hits['/a'], 2, 'the URL mapping was lost with the index, so it was fetched again');
  });

  it('refetches when a cached file was removed or truncated behind its back', async () => {
    const cache = new DownloadCache(dir, 10_000);
    const p = await cache.get(`${base}/a`, OPTS);
    await fs.truncate(p, 10);
    assert.deepEqual(await fs.readFile(await cache.get(`${base}/a`, OPTS)), BODIES['/a']);
    assert.equal(hits['/a'], 2);
  });

  it('uses the same guard and limits as fetchBytes', async () => {
    const cache = new DownloadCache(dir, 2500);
    await assert.rejects(cache.get(`${base}/a`, { ...OPTS, allow: [] }), (e: unknown) => {
      return e instanceof AtelierError && e.code === 'URL_REFUSED' && e.field === 'loras[0].path';
    });
    await assert.rejects(cache.get(`${base}/big`, OPTS), { code: 'PAYLOAD_TOO_LARGE', message: /2500 bytes/ }); // cache size caps a file
    await assert.rejects(cache.get(`${base}/missing`, OPTS), { code: 'IMAGE_FETCH_FAILED' });
    assert.equal(hits['/a'], undefined);
    assert.equal(await cache.totalBytes(), 0);
    const data = `data:application/octet-stream;base64,${BODIES['/c']!.toString('base64')}`;
    assert.deepEqual(await fs.readFile(await cache.get(data, OPTS)), BODIES['/c']);
  });
});

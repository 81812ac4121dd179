// Adapter sources at submit time (names inside real temp folders, URLs) and at run time (a real download cache
// fed by real HTTP on 127.0.0.1, allow-listed as the server tests do, and by data: URIs).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAllowList } from '../images/address-guard.ts';
import { DownloadCache } from '../images/download-cache.ts';
import { AdapterFiles, resolveAdapterSource, resolveLocalAdapter, type AdapterDirs } from './adapter-sources.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-adapter-sources-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

// A ComfyUI-like models folder with one LoRA, a sub-folder, and a symlink that leads out.
const models = path.join(tmp, 'models-root');
fs.mkdirSync(path.join(models, 'models', 'loras', 'styles'), { recursive: true });
fs.mkdirSync(path.join(models, 'models', 'embeddings'), { recursive: true });
fs.writeFileSync(path.join(models, 'models', 'loras', 'pixel.safetensors'), 'x');
fs.writeFileSync(path.join(models, 'models', 'loras', 'styles', 'ink.safetensors'), 'x');
fs.writeFileSync(path.join(models, 'models', 'embeddings', 'neg.safetensors'), 'x');
fs.writeFileSync(path.join(tmp, 'secret.safetensors'), 'x');
fs.symlinkSync(path.join(tmp, 'secret.safetensors'), path.join(models, 'models', 'loras', 'escape.safetensors'));

const dirs: AdapterDirs = {
  loras: [fs.realpathSync(path.join(models, 'models', 'loras'))],
  embeddings: [fs.realpathSync(path.join(models, 'models', 'embeddings'))],
  known: { loras: new Map([['flat-one', '/somewhere/flat-one.safetensors']]), embeddings: new Map() },
};

describe('local adapter names', () => {
  const resolve = (name: string) => resolveLocalAdapter(name, dirs.loras, 'loras.0.path', 'LoRA');

  it('resolves names with or without the extension, and in sub-folders', () => {
    assert.equal(resolve('pixel'), fs.realpathSync(path.join(models, 'models', 'loras', 'pixel.safetensors')));
    assert.equal(resolve('pixel.safetensors'), resolve('pixel'));
    assert.match(resolve('styles/ink'), /styles\/ink\.safetensors$/);
  });

  it('nothing escapes the folder: .., absolute paths, symlinks out, schemes', () => {
    for (const [name, why] of [
      ['../../secret', /contains "\.\."/],
      ['styles/../../x', /contains "\.\."/],
      ['/etc/passwd', /absolute path/],
      ['escape', /outside the LoRA folder/],
      ['file:///etc/passwd', /URL scheme/],
      ['a\\b', /backslash/],
    ] as const) {
      assert.throws(() => resolve(name), (e: any) => e.code === 'INVALID_INPUT' && e.field === 'loras.0.path' && why.test(e.message), name);
    }
  });

  it('unknown names are ADAPTER_INVALID; discovered names win', () => {
    assert.throws(() => resolve('missing'), (e: any) => e.code === 'ADAPTER_INVALID' && /no LoRA named "missing"/.test(e.message));
    const known = new Map([['flat-one', '/somewhere/flat-one.safetensors']]);
    assert.equal(resolveLocalAdapter('flat-one', [], 'loras.0.path', 'LoRA', known), '/somewhere/flat-one.safetensors');
    assert.throws(() => resolveLocalAdapter('x', [], 'loras.0.path', 'LoRA'), /no LoRA folder/);
  });
});

describe('resolveAdapterSource (submit time)', () => {
  it('a local name becomes the real path inside the folders of its kind, and only its kind', () => {
    assert.deepEqual(resolveAdapterSource('pixel', dirs, 'LoRA', 'loras.0.path'), {
      kind: 'file',
      source: fs.realpathSync(path.join(models, 'models', 'loras', 'pixel.safetensors')),
    });
    assert.deepEqual(resolveAdapterSource('flat-one.safetensors', dirs, 'LoRA', 'loras.1.path'), { kind: 'file', source: '/somewhere/flat-one.safetensors' });
    assert.equal(resolveAdapterSource('neg', dirs, 'embedding', 'embeddings.0.path').source, fs.realpathSync(path.join(models, 'models', 'embeddings', 'neg.safetensors')));
    assert.throws(() => resolveAdapterSource('neg', dirs, 'LoRA', 'loras.0.path'), { code: 'ADAPTER_INVALID', field: 'loras.0.path' });
    assert.throws(() => resolveAdapterSource('pixel', dirs, 'embedding', 'embeddings.2.path'), { code: 'ADAPTER_INVALID', field: 'embeddings.2.path', message: /no embedding named "pixel"/ });
  });

  it('escapes are refused with the field', () => {
    for (const name of ['../secret', 'escape', '/etc/passwd', 'file:///etc/passwd', 'ftp://example.com/x.safetensors']) {
      assert.throws(() => resolveAdapterSource(name, dirs, 'LoRA', 'loras.3.path'), { code: 'INVALID_INPUT', field: 'loras.3.path' }, name);
    }
  });

  it('http(s) and data: URLs are kept for the runner; a malformed URL is URL_REFUSED', () => {
    for (const url of ['https://example.com/a.safetensors', 'HTTP://127.0.0.1:1/x', 'data:application/octet-stream;base64,AAAA']) {
      assert.deepEqual(resolveAdapterSource(url, dirs, 'LoRA', 'loras.0.path'), { kind: 'url', source: url });
    }
    assert.throws(() => resolveAdapterSource('http://[bad', dirs, 'embedding', 'embeddings.0.path'), {
      code: 'URL_REFUSED',
      field: 'embeddings.0.path',
      message: /is not a valid URL/,
    });
  });
});

describe('AdapterFiles.materialize (run time)', () => {
  const body = Buffer.alloc(1500, 'l');
  let hits = 0;
  let server: http.Server;
  let base = '';
  before(async () => {
    server = http.createServer((req, res) => {
      hits++;
      if (req.url !== '/lora.safetensors') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const limits = { maxBytes: 1 << 20, timeoutMs: 5000, maxRedirects: 2 };
  const cacheDir = path.join(tmp, 'cache');

  it('a local file is used where it is', async () => {
    const files = new AdapterFiles(new DownloadCache(cacheDir, 1 << 20), parseAllowList(['127.0.0.0/8']), limits);
    const f = await files.materialize({ kind: 'file', source: '/models/loras/x.safetensors' }, 'loras.0.path');
    assert.equal(f.path, '/models/loras/x.safetensors');
    f.release();
  });

  it('a loopback URL is fetched once into the cache (allow-listed), then served from it', async () => {
    const files = new AdapterFiles(new DownloadCache(cacheDir, 1 << 20), parseAllowList(['127.0.0.0/8', '::1/128']), limits);
    const src = { kind: 'url' as const, source: `${base}/lora.safetensors` };
    const a = await files.materialize(src, 'loras.0.path');
    assert.ok(a.path.startsWith(cacheDir + path.sep));
    assert.deepEqual(fs.readFileSync(a.path), body);
    const b = await files.materialize(src, 'loras.1.path');
    assert.equal(b.path, a.path);
    assert.equal(hits, 1);
    a.release();
    b.release();
    await assert.rejects(files.materialize({ kind: 'url', source: `${base}/missing` }, 'loras.2.path'), { code: 'IMAGE_FETCH_FAILED', field: 'loras.2.path' });
  });

  it('a data: URI is materialised through the cache', async () => {
    const files = new AdapterFiles(new DownloadCache(cacheDir, 1 << 20), [], limits);
    const bytes = Buffer.from('embedding bytes');
    const f = await files.materialize({ kind: 'url', source: `data:application/octet-stream;base64,${bytes.toString('base64')}` }, 'embeddings.0.path');
    assert.deepEqual(fs.readFileSync(f.path), bytes);
    f.release();
  });

  it('the SSRF guard and the byte limit apply: loopback is refused without the allow-list', async () => {
    const seen = hits;
    const guarded = new AdapterFiles(new DownloadCache(path.join(tmp, 'cache-2'), 1 << 20), [], limits);
    await assert.rejects(guarded.materialize({ kind: 'url', source: `${base}/lora.safetensors` }, 'loras.0.path'), { code: 'URL_REFUSED', field: 'loras.0.path' });
    assert.equal(hits, seen);
    const small = new AdapterFiles(new DownloadCache(path.join(tmp, 'cache-3'), 1 << 20), parseAllowList(['127.0.0.0/8']), { ...limits, maxBytes: 100 });
    await assert.rejects(small.materialize({ kind: 'url', source: `${base}/lora.safetensors` }, 'loras.0.path'), { code: 'PAYLOAD_TOO_LARGE' });
  });
});

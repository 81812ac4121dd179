// Real HTTP on 127.0.0.1 only. Refusals of other addresses happen before any connection is attempted.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AtelierError, type ErrorCode } from '../contract/errors.ts';
import { parseAllowList } from './address-guard.ts';
import { fetchBytes, quoteUrl, type FetchOptions } from './fetch.ts';

// A valid 1×1 PNG (red pixel).
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC',
  'base64',
);

let server: http.Server;
let base = '';
let hits = 0;
const open = new Set<import('node:net').Socket>();

before(async () => {
  server = http.createServer((req, res) => {
    hits++;
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname;
    if (p === '/image.png') {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': PNG.length });
      res.end(PNG);
    } else if (p.startsWith('/hop/')) {
      const n = Number(p.slice(5));
      res.writeHead(302, { location: n <= 1 ? '/image.png' : `/hop/${n - 1}` });
      res.end();
    } else if (p === '/absolute-hop') {
      res.writeHead(301, { location: `${base}/image.png` });
      res.end();
    } else if (p === '/echo-host') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(req.headers.host ?? '');
    } else if (p === '/big') {
      res.writeHead(200, { 'content-length': 5000 });
      res.end(Buffer.alloc(5000));
    } else if (p === '/big-chunked') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' }); // no Content-Length
      for (let i = 0; i < 10; i++) res.write(Buffer.alloc(500));
      res.end();
    } else if (p === '/slow') {
      const t = setTimeout(() => res.end(PNG), 3000);
      res.on('close', () => clearTimeout(t));
    } else if (p === '/slow-body') {
      res.writeHead(200, { 'content-length': 100 });
      res.write(Buffer.alloc(10));
      const t = setTimeout(() => res.end(Buffer.alloc(90)), 3000);
      res.on('close', () => clearTimeout(t));
    } else if (p === '/to-metadata') {
      res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
      res.end();
    } else if (p === '/to-private') {
      res.writeHead(307, { location: 'http://10.0.0.1/x.png' });
      res.end();
    } else if (p === '/to-file') {
      res.writeHead(302, { location: 'file:///etc/passwd' });
      res.end();
    } else if (p === '/to-localhost') {
      res.writeHead(302, { location: `http://localhost:${(server.address() as AddressInfo).port}/image.png` });
      res.end();
    } else if (p === '/loop') {
      res.writeHead(302, { location: '/loop' });
      res.end();
    } else if (p === '/no-location') {
      res.writeHead(302);
      res.end();
    } else {
      res.writeHead(404);
      res.end('not found');
    }
  });
  server.on('connection', (s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  for (const s of open) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

const LOOPBACK = parseAllowList(['127.0.0.0/8']);
const opts = (over: Partial<FetchOptions> = {}): FetchOptions => ({
  maxBytes: 1000,
  timeoutMs: 2000,
  maxRedirects: 3,
  allow: LOOPBACK,
  field: 'image_url',
  ...over,
});

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, ...fragments: string[]): Promise<AtelierError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof AtelierError, `expected AtelierError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  for (const f of fragments) assert.ok(caught.message.includes(f), `"${caught.message}" lacks "${f}"`);
  return caught;
}

describe('fetchBytes over http (loopback allow-listed)', () => {
  it('fetches an image with its content type', async () => {
    const r = await fetchBytes(`${base}/image.png`, opts());
    assert.deepEqual(r.bytes, PNG);
    assert.equal(r.contentType, 'image/png');
    assert.equal(r.finalUrl, `${base}/image.png`);
  });

  it('follows a redirect chain up to maxRedirects, relative and absolute', async () => {
    const r = await fetchBytes(`${base}/hop/3`, opts({ maxRedirects: 3 }));
    assert.deepEqual(r.bytes, PNG);
    assert.equal(r.finalUrl, `${base}/image.png`);
    assert.equal((await fetchBytes(`${base}/absolute-hop`, opts())).finalUrl, `${base}/image.png`);
  });

  it('refuses one redirect too many', async () => {
    const e = await rejectsWith(fetchBytes(`${base}/hop/4`, opts({ maxRedirects: 3 })), 'IMAGE_FETCH_FAILED', 'more than 3 redirects');
    assert.equal(e.field, 'image_url');
    await rejectsWith(fetchBytes(`${base}/loop`, opts()), 'IMAGE_FETCH_FAILED', 'redirects');
    await rejectsWith(fetchBytes(`${base}/no-location`, opts()), 'IMAGE_FETCH_FAILED', 'Location');
  });

  it('refuses a declared Content-Length over the limit (413)', async () => {
    const e = await rejectsWith(fetchBytes(`${base}/big`, opts()), 'PAYLOAD_TOO_LARGE', 'declares 5000 bytes', '1000');
    assert.equal(e.status, 413);
  });

  it('aborts a streamed body once it passes the limit (413)', async () => {
    await rejectsWith(fetchBytes(`${base}/big-chunked`, opts()), 'PAYLOAD_TOO_LARGE', 'more than 1000 bytes');
    const ok = await fetchBytes(`${base}/big-chunked`, opts({ maxBytes: 5000 }));
    assert.equal(ok.bytes.length, 5000);
  });

  it('times out a slow response and a slow body', async () => {
    const t0 = Date.now();
    await rejectsWith(fetchBytes(`${base}/slow`, opts({ timeoutMs: 200 })), 'IMAGE_FETCH_FAILED', 'timed out after 200 ms');
    await rejectsWith(fetchBytes(`${base}/slow-body`, opts({ timeoutMs: 200 })), 'IMAGE_FETCH_FAILED', 'timed out');
    assert.ok(Date.now() - t0 < 2000);
  });

  it('reports HTTP errors and unreachable ports', async () => {
    await rejectsWith(fetchBytes(`${base}/missing`, opts()), 'IMAGE_FETCH_FAILED', 'HTTP 404');
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await rejectsWith(fetchBytes(`http://127.0.0.1:${port}/x`, opts()), 'IMAGE_FETCH_FAILED', 'ECONNREFUSED');
  });

  it('connects to the vetted address and sends the name in the Host header', async () => {
    const port = (server.address() as AddressInfo).port;
    const r = await fetchBytes(`http://localhost:${port}/echo-host`, opts({ allow: parseAllowList(['127.0.0.0/8', '::1/128']) }));
    assert.equal(r.bytes.toString(), `localhost:${port}`);
  });

  it('stops when the caller aborts', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await rejectsWith(fetchBytes(`${base}/slow`, opts({ signal: ac.signal })), 'CANCELLED');
  });
});

describe('fetchBytes refusals', () => {
  it('refuses the same loopback URL without the allow-list, before connecting', async () => {
    const before = hits;
    const e = await rejectsWith(fetchBytes(`${base}/image.png`, opts({ allow: [] })), 'URL_REFUSED', base, 'loopback');
    assert.equal(e.field, 'image_url');
    assert.equal(e.status, 422);
    assert.equal(hits, before, 'the server was never contacted');
  });

  it('refuses the name localhost (it resolves to loopback)', async () => {
    await rejectsWith(fetchBytes('http://localhost/x.png', opts({ allow: [] })), 'URL_REFUSED', 'localhost', 'loopback');
    await rejectsWith(fetchBytes('http://[::1]/x.png', opts({ allow: [] })), 'URL_REFUSED', 'loopback');
    await rejectsWith(fetchBytes('http://[::ffff:127.0.0.1]/x', opts({ allow: [] })), 'URL_REFUSED', 'loopback');
    await rejectsWith(fetchBytes('http://0x7f.1/x', opts({ allow: [] })), 'URL_REFUSED', 'loopback');
  });

  it('refuses private, metadata and unspecified literals outright', async () => {
    await rejectsWith(fetchBytes('http://169.254.169.254/latest/meta-data/', opts()), 'URL_REFUSED', 'metadata');
    await rejectsWith(fetchBytes('http://[fd00:ec2::254]/', opts()), 'URL_REFUSED', 'metadata');
    await rejectsWith(fetchBytes('http://192.168.0.10/a.png', opts()), 'URL_REFUSED', 'private');
    await rejectsWith(fetchBytes('http://0.0.0.0:8080/', opts()), 'URL_REFUSED', 'unspecified');
  });

  it('refuses a redirect to a refused host, naming both URLs', async () => {
    await rejectsWith(fetchBytes(`${base}/to-metadata`, opts()), 'URL_REFUSED', '169.254.169.254', 'metadata', 'redirected from');
    await rejectsWith(fetchBytes(`${base}/to-private`, opts()), 'URL_REFUSED', '10.0.0.1', 'private');
    await rejectsWith(fetchBytes(`${base}/to-file`, opts()), 'URL_REFUSED', 'file:');
    // localhost passes 127.0.0.0/8 only when every address it resolves to is allowed
    const r = await fetchBytes(`${base}/to-localhost`, opts({ allow: parseAllowList(['127.0.0.0/8', '::1/128']) }));
    assert.deepEqual(r.bytes, PNG);
  });

  it('refuses other schemes, credentials and junk', async () => {
    for (const u of ['file:///etc/passwd', 'ftp://example.com/a.png', 'gopher://example.com/', 'javascript:alert(1)']) {
      await rejectsWith(fetchBytes(u, opts()), 'URL_REFUSED', 'scheme');
    }
    const e = await rejectsWith(fetchBytes(`http://user:secret@127.0.0.1:1/x`, opts()), 'URL_REFUSED', 'credentials');
    assert.ok(!e.message.includes('secret'), 'the password is not echoed');
    await rejectsWith(fetchBytes('not a url', opts()), 'URL_REFUSED', 'not a valid URL');
  });

  it('names the field and truncates long URLs', async () => {
    const long = `ftp://example.com/${'a'.repeat(500)}`;
    const e = await rejectsWith(fetchBytes(long, opts({ field: 'loras[0].path' })), 'URL_REFUSED', 'loras[0].path');
    assert.equal(e.field, 'loras[0].path');
    assert.ok(e.message.length < 250, e.message);
    assert.equal(quoteUrl('x'.repeat(200)), JSON.stringify(`${'x'.repeat(100)}…`));
  });
});

describe('fetchBytes with data: URIs', () => {
  it('decodes base64', async () => {
    const r = await fetchBytes(`data:image/png;base64,${PNG.toString('base64')}`, opts());
    assert.deepEqual(r.bytes, PNG);
    assert.equal(r.contentType, 'image/png');
  });

  it('decodes base64 with whitespace and url-safe alphabet', async () => {
    const b64 = PNG.toString('base64url');
    const r = await fetchBytes(`data:;base64,${b64.slice(0, 10)}\n${b64.slice(10)}`, opts());
    assert.deepEqual(r.bytes, PNG);
    assert.equal(r.contentType, undefined);
  });

  it('decodes percent-encoded bytes, not only UTF-8', async () => {
    const r = await fetchBytes('data:application/octet-stream,%89PNG%0D%0A%1A%0Ahello', opts());
    assert.deepEqual(r.bytes, Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('hello')]));
    assert.equal((await fetchBytes('data:text/plain;charset=utf-8,a%20b', opts())).contentType, 'text/plain;charset=utf-8');
  });

  it('enforces the byte limit and rejects malformed data', async () => {
    await rejectsWith(fetchBytes(`data:;base64,${Buffer.alloc(2000).toString('base64')}`, opts()), 'PAYLOAD_TOO_LARGE');
    await rejectsWith(fetchBytes(`data:,${'x'.repeat(1001)}`, opts()), 'PAYLOAD_TOO_LARGE');
    await rejectsWith(fetchBytes('data:image/png;base64,@@@@', opts()), 'IMAGE_FETCH_FAILED', 'base64');
    await rejectsWith(fetchBytes('data:image/png;base64', opts()), 'IMAGE_FETCH_FAILED', 'malformed');
    await rejectsWith(fetchBytes('data:,%zz', opts()), 'IMAGE_FETCH_FAILED', 'percent');
  });
});

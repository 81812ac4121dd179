import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../contract/types.ts';
import { ownerOf } from './auth.ts';
import { loadOrCreateOutputSecret, OutputUrlSigner } from './output-urls.ts';
import { buildServer } from './server.ts';
import { createTestEngine, listen, tempDir, testConfig, waitFor } from './test-support.ts';

const ALICE = { authorization: 'Key alice-key' };
const BOB = { authorization: 'Bearer bob-key' };
const ROOT = { authorization: 'Key root-key' };

let engine: Engine;
let app: FastifyInstance;
let base: string;
let receiver: http.Server;
let hookUrl: string;
const hooks: any[] = [];
const tmp = tempDir();

before(async () => {
  engine = await createTestEngine();
  const config = testConfig(tmp.dir, { apiKeys: ['alice-key', 'bob-key'], adminKeys: ['root-key'] });
  app = buildServer(config, { engine, logger: false, pollMs: 50 });
  base = await listen(app);
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      hooks.push(JSON.parse(body));
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});
after(async () => {
  await app.close();
  await engine.close();
  receiver.close();
  tmp.remove();
});

const tiny = { prompt: 'owned', image_size: { width: 64, height: 64 }, num_inference_steps: 1 };

async function call(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; body: any; headers: Headers }> {
  const r = await fetch(url.startsWith('http') ? url : `${base}${url}`, { method, headers });
  const text = await r.text();
  return { status: r.status, body: text.startsWith('{') ? JSON.parse(text) : text, headers: r.headers };
}

async function submitAs(headers: Record<string, string>, query = ''): Promise<any> {
  const r = await fetch(`${base}/queue/sdxl/text-to-image${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(tiny),
  });
  assert.equal(r.status, 200);
  return r.json();
}

async function completed(sub: any, headers: Record<string, string>): Promise<void> {
  await waitFor(async () => (await call(sub.status_url, headers)).body.status === 'COMPLETED', 20_000);
}

/** A finished job of alice's, by /run (its answer is the result). */
let aliceRun: { id: string; result: any };
async function aliceJob(): Promise<{ id: string; result: any }> {
  if (aliceRun) return aliceRun;
  const r = await fetch(`${base}/run/sdxl/text-to-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...ALICE },
    body: JSON.stringify(tiny),
  });
  assert.equal(r.status, 200);
  aliceRun = { id: r.headers.get('x-fal-request-id')!, result: await r.json() };
  return aliceRun;
}

describe('with API keys: /healthz', () => {
  it('without a key says only whether the server is up; a key gets the details; a wrong key is a 401', async () => {
    const open = await call('/healthz');
    assert.equal(open.status, 200);
    assert.deepEqual(open.body, { status: 'ok' });
    const full = await call('/healthz', BOB);
    assert.equal(full.status, 200);
    assert.equal(full.body.status, 'ok');
    assert.equal(full.body.models[0].is_test_model, true);
    assert.deepEqual(Object.keys(full.body.queue), ['queued', 'running']);
    assert.ok('running_request_id' in full.body);
    const wrong = await call('/healthz', { authorization: 'Key nope' });
    assert.deepEqual([wrong.status, wrong.body.error.code], [401, 'UNAUTHORIZED']);
  });
});

describe('with API keys: outputs', () => {
  it("a result's image URLs are signed and work without a header (as in <img>); unsigned ones need a key", async () => {
    const { result } = await aliceJob();
    const url = new URL(result.images[0].url);
    assert.match(url.pathname, /^\/outputs\/[0-9a-f-]{36}\/0\.jpg$/);
    const unsigned = await call(url.pathname);
    assert.deepEqual([unsigned.status, unsigned.body.error?.code], [401, 'UNAUTHORIZED'], 'no image without a key or a signature');
    assert.match(unsigned.body.error.message, /signed URL/);
    const expires = Number(url.searchParams.get('expires'));
    const now = Date.now() / 1000;
    assert.ok(expires >= now + 7 * 86400 - 5 && expires <= now + 7 * 86400 + 3600, `expires ${expires} is about 7 days ahead`);
    assert.match(url.searchParams.get('sig')!, /^[0-9a-f]{64}$/);
    const img = await fetch(url);
    assert.equal(img.status, 200);
    assert.equal(img.headers.get('content-type'), 'image/jpeg');
    assert.match(img.headers.get('cache-control')!, /^private, max-age=\d+, immutable$/);
    assert.deepEqual([...new Uint8Array(await img.arrayBuffer()).subarray(0, 3)], [0xff, 0xd8, 0xff]);
    // the result fetched again carries the same URL (browsers can cache it)
    const again = await call(`/queue/sdxl/text-to-image/requests/${aliceRun.id}`, ALICE);
    assert.equal(again.body.images[0].url, result.images[0].url);
  });

  it('an altered, moved or expired signature is a 403', async () => {
    const { result } = await aliceJob();
    const url = new URL(result.images[0].url);
    const sig = url.searchParams.get('sig')!;
    const expires = Number(url.searchParams.get('expires'));
    const flipped = `${sig.slice(0, -1)}${sig.endsWith('0') ? '1' : '0'}`;
    const cases = [
      `${url.pathname}?expires=${expires}&sig=${flipped}`,
      `${url.pathname}?expires=${expires + 3600}&sig=${sig}`, // a later expiry with the old signature
      `${url.pathname.replace('/0.jpg', '/1.jpg')}?expires=${expires}&sig=${sig}`, // another file
      `${url.pathname}?expires=${expires}&sig=nothex`,
      `${url.pathname}?sig=${sig}`,
    ];
    for (const c of cases) {
      const r = await call(c);
      assert.deepEqual([r.status, r.body.error.code], [403, 'FORBIDDEN'], c);
    }
    // signed with the server's secret an hour ago, valid for a minute: expired
    const past = new OutputUrlSigner(loadOrCreateOutputSecret(tmp.dir), 60, () => Date.now() / 1000 - 3600);
    const expired = await call(past.sign(url.pathname));
    assert.deepEqual([expired.status, expired.body.error.code], [403, 'FORBIDDEN']);
    assert.match(expired.body.error.message, /expired at .*fetch the request's result again/);
  });

  it("with a key instead of a signature: the owner's key and an admin key read it; another key gets a 404", async () => {
    const { result } = await aliceJob();
    const path = new URL(result.images[0].url).pathname;
    assert.equal((await call(path, ALICE)).status, 200);
    assert.equal((await call(path, ROOT)).status, 200);
    const other = await call(path, BOB);
    assert.deepEqual([other.status, other.body.error.code], [404, 'NOT_FOUND']);
    assert.equal((await call(path, { authorization: 'Key nope' })).status, 401);
  });

  it('webhook payloads carry signed image URLs too', async () => {
    const sub = await submitAs(ALICE, `?webhook=${encodeURIComponent(hookUrl)}`);
    const hook = await waitFor(async () => hooks.find((h) => h.request_id === sub.request_id), 20_000);
    assert.equal(hook.status, 'OK');
    const url = hook.payload.images[0].url as string;
    assert.match(url, /\/outputs\/[0-9a-f-]{36}\/0\.jpg\?expires=\d+&sig=[0-9a-f]{64}$/);
    assert.equal((await fetch(url)).status, 200);
  });
});

describe('with API keys: requests belong to the key that submitted them', () => {
  it('the job stores a hash of its key, never the key', async () => {
    const { id } = await aliceJob();
    const job = await app.atelier.queue.get(id);
    assert.equal(job?.owner, ownerOf('alice-key'));
    assert.ok(!JSON.stringify(job).includes('alice-key'));
  });

  it("another key's request is a 404 on status, stream, result and cancel, the same as an unknown id", async () => {
    const { id } = await aliceJob();
    const under = '/queue/sdxl/text-to-image/requests';
    const unknown = randomUUID();
    for (const [suffix, method] of [['/status', 'GET'], ['/status/stream', 'GET'], ['', 'GET'], ['/cancel', 'PUT']] as const) {
      const theirs = await call(`${under}/${id}${suffix}`, BOB, method);
      const missing = await call(`${under}/${unknown}${suffix}`, BOB, method);
      assert.deepEqual([theirs.status, theirs.body.error.code], [404, 'NOT_FOUND'], suffix);
      assert.equal(theirs.body.error.message.replace(id, 'ID'), missing.body.error.message.replace(unknown, 'ID'), suffix);
      assert.equal(theirs.body.status, missing.body.status, suffix);
    }
    assert.equal((await app.atelier.queue.get(id))?.state, 'completed');
  });

  it('its own key and an admin key read status, stream, result; cancel answers them', async () => {
    const { id } = await aliceJob();
    const under = `/queue/sdxl/text-to-image/requests/${id}`;
    for (const who of [ALICE, ROOT]) {
      assert.equal((await call(`${under}/status`, who)).body.status, 'COMPLETED');
      assert.equal((await call(under, who)).status, 200);
      const stream = await call(`${under}/status/stream`, who);
      assert.equal(stream.status, 200);
      assert.match(stream.body, /"status":"COMPLETED"/);
      const cancel = await call(`${under}/cancel`, who, 'PUT');
      assert.deepEqual([cancel.status, cancel.body.status], [400, 'ALREADY_COMPLETED']);
    }
  });

  it("another key cannot cancel a queued request; /healthz shows a running request's id to its key and admins only", async () => {
    const sub = await submitAs(ALICE);
    const cancel = await call(sub.cancel_url, BOB, 'PUT');
    assert.deepEqual([cancel.status, cancel.body.status], [404, 'NOT_FOUND']);
    const seen = await waitFor(async () => {
      const [a, b, r] = await Promise.all([ALICE, BOB, ROOT].map((h) => call('/healthz', h)));
      return a!.body.running_request_id === sub.request_id ? { b: b!.body, r: r!.body } : undefined;
    }, 20_000, 2).catch(() => undefined);
    // a 1-step job can finish between polls; when it was caught running, only bob's view hides it
    if (seen) {
      assert.equal(seen.b.running_request_id, null);
      assert.ok([sub.request_id, null].includes(seen.r.running_request_id));
    }
    await completed(sub, ALICE);
    const job = await app.atelier.queue.get(sub.request_id);
    assert.equal(job?.state, 'completed', 'bob did not cancel it');
  });

  it('requests stored before owners existed are readable by any valid key', async () => {
    const { id } = await aliceJob();
    const template = (await app.atelier.queue.get(id))!;
    const legacy = randomUUID();
    await app.atelier.queue.add({ id: legacy, endpoint: template.endpoint, app: template.app, mode: 'queue', input: template.input, baseUrl: template.baseUrl });
    const url = `/queue/sdxl/text-to-image/requests/${legacy}`;
    await waitFor(async () => (await call(`${url}/status`, BOB)).body.status === 'COMPLETED', 20_000);
    const result = await call(url, BOB);
    assert.equal(result.status, 200);
    assert.equal((await call(new URL(result.body.images[0].url).pathname, BOB)).status, 200);
    assert.equal((await call(url)).status, 401, 'still not without a key');
  });
});

describe('failed key checks are limited per client address', () => {
  let guarded: FastifyInstance;
  let at: string;
  before(async () => {
    const dir = tempDir();
    guarded = buildServer(testConfig(dir.dir, { apiKeys: ['right'] }), { engine, logger: false });
    guarded.addHook('onClose', async () => dir.remove());
    at = await listen(guarded);
  });
  after(async () => guarded.close());

  const models = (headers: Record<string, string> = {}) => call(`${at}/v1/models`, headers);

  it('10 wrong keys in a minute block the address (429 + Retry-After), a right key too; missing keys and successes do not count', async () => {
    for (let i = 0; i < 15; i++) assert.equal((await models()).status, 401, 'no key: not a guess');
    for (let i = 0; i < 9; i++) assert.equal((await models({ authorization: `Key wrong-${i}` })).status, 401);
    assert.equal((await models({ authorization: 'Key right' })).status, 200, 'nine failures: still open');
    assert.equal((await models({ authorization: 'Key wrong-9' })).status, 401, 'the tenth failure is answered, then the block starts');
    for (const headers of [{ authorization: 'Key wrong-10' }, { authorization: 'Key right' }, {}] as Record<string, string>[]) {
      const r = await models(headers);
      assert.deepEqual([r.status, r.body.error.code], [429, 'RATE_LIMITED'], JSON.stringify(headers));
      const retry = Number(r.headers.get('retry-after'));
      assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
      assert.match(r.body.error.message, /failed API key checks/);
    }
    // what needs no key still answers: a health probe from the same address
    const health = await call(`${at}/healthz`);
    assert.deepEqual([health.status, health.body], [200, { status: 'ok' }]);
  });
});

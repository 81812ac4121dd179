import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../contract/types.ts';
import { buildServer } from './server.ts';
import { createTestEngine, listen, tempDir, testConfig, waitFor } from './test-support.ts';
import { signWebhook, verifyWebhook } from './webhooks.ts';

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  answered: number;
}

let app: FastifyInstance;
let engine: Engine;
let base: string;
let receiver: http.Server;
let hookUrl: string;
const received: Received[] = [];
const tmp = tempDir();

before(async () => {
  engine = await createTestEngine();
  app = buildServer(testConfig(tmp.dir, { webhookSecret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }), { engine, logger: false });
  base = await listen(app);
  // A local receiver that fails the first delivery of every request with a 500.
  const seen = new Set<string>();
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const id = String(req.headers['webhook-id']);
      const answered = seen.has(id) ? 200 : 500;
      seen.add(id);
      received.push({ headers: req.headers, body, answered });
      res.writeHead(answered).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook?x=1`;
});
after(async () => {
  await app.close();
  await engine.close();
  receiver.close();
  tmp.remove();
});

async function submit(input: unknown, query: string): Promise<string> {
  const r = await fetch(`${base}/queue/fal-ai/fast-sdxl${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(input),
  });
  assert.equal(r.status, 200);
  return ((await r.json()) as any).request_id;
}

describe('webhooks', () => {
  it('signature scheme matches the Standard Webhooks reference vector', () => {
    const sig = signWebhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}');
    assert.equal(sig, 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('delivers a signed result, retrying after a first 500', async () => {
    const id = await submit({ prompt: 'hook', image_size: { width: 64, height: 64 }, num_inference_steps: 2 }, `?webhook=${encodeURIComponent(hookUrl)}`);
    const mine = await waitFor(async () => {
      const m = received.filter((r) => r.headers['webhook-id'] === id);
      return m.length >= 2 ? m : undefined;
    });
    assert.deepEqual(mine.map((m) => m.answered), [500, 200]);
    const last = mine[1]!;
    verifyWebhook(app.atelier.webhookSecret, last.headers, last.body); // throws when the signature is wrong
    assert.throws(() => verifyWebhook(app.atelier.webhookSecret, last.headers, last.body.replace('hook', 'hooK')), /does not match/);
    assert.throws(() => verifyWebhook(app.atelier.webhookSecret, last.headers, last.body, Math.floor(Date.now() / 1000) + 3600), /too old/);
    const body = JSON.parse(last.body);
    assert.equal(body.request_id, id);
    assert.equal(body.status, 'OK');
    assert.equal(body.error, null);
    assert.equal(body.payload.images.length, 1);
    assert.equal(body.payload.prompt, 'hook');
    const job = await waitFor(async () => {
      const j = await app.atelier.queue.get(id);
      return j?.webhookState === 'delivered' ? j : undefined;
    });
    assert.equal(job.webhookAttempts, 2);
  });

  it('a failed job is delivered as status ERROR (fal_webhook works too)', async () => {
    const id = await submit({ prompt: 'doomed', image_size: { width: 128, height: 128 }, num_inference_steps: 65 }, `?fal_webhook=${encodeURIComponent(hookUrl)}`);
    await waitFor(async () => (await app.atelier.queue.get(id))?.state === 'running');
    await fetch(`${base}/queue/fal-ai/fast-sdxl/requests/${id}/cancel`, { method: 'PUT' });
    const m = await waitFor(async () => received.find((r) => r.headers['webhook-id'] === id && r.answered === 200));
    const body = JSON.parse(m.body);
    assert.equal(body.status, 'ERROR');
    assert.equal(body.payload.error.code, 'CANCELLED');
    assert.equal(typeof body.error, 'string');
  });

  it('refuses webhook URLs outside the allowed networks at submit time', async () => {
    const other = tempDir();
    const closed = buildServer(testConfig(other.dir, { allowNetworks: [] }), { engine, logger: false });
    const r = await closed.inject({
      method: 'POST',
      url: `/queue/sdxl/text-to-image?webhook=${encodeURIComponent(hookUrl)}`,
      payload: { prompt: 'x' },
    });
    assert.equal(r.statusCode, 422);
    assert.equal(r.json().error.code, 'URL_REFUSED');
    assert.equal(r.json().error.field, 'webhook');
    const bad = await closed.inject({ method: 'POST', url: '/queue/sdxl/text-to-image?webhook=ftp://x', payload: { prompt: 'x' } });
    assert.equal(bad.json().error.code, 'URL_REFUSED');
    await closed.close();
    other.remove();
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../contract/types.ts';
import { RateLimiter } from './auth.ts';
import { parseRateLimit } from './config.ts';
import { buildServer } from './server.ts';
import { createTestEngine, listen, tempDir, testConfig } from './test-support.ts';

let app: FastifyInstance;
let engine: Engine;
let base: string;
const tmp = tempDir();

before(async () => {
  engine = await createTestEngine();
  const config = testConfig(tmp.dir, { apiKeys: ['k1', 'id:secret'], rateLimit: parseRateLimit('2/min') });
  app = buildServer(config, { engine, logger: false });
  base = await listen(app);
});
after(async () => {
  await app.close();
  await engine.close();
  tmp.remove();
});

const submit = (auth?: string) =>
  fetch(`${base}/queue/sdxl/text-to-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
    body: '{}', // invalid on purpose: the limit applies before validation, and no job runs
  });

describe('API keys', () => {
  it('401 without a key or with a wrong one, in the error shape', async () => {
    for (const auth of [undefined, 'Key nope', 'Basic k1', 'Bearer ']) {
      const r = await submit(auth);
      assert.equal(r.status, 401, `auth ${auth}`);
      const body: any = await r.json();
      assert.equal(body.error.code, 'UNAUTHORIZED');
      assert.match(r.headers.get('www-authenticate')!, /Key/);
    }
    const m = await fetch(`${base}/metrics`);
    assert.equal(m.status, 401);
  });

  it('accepts "Key <key>" and "Bearer <key>" (fal-style id:secret keys too)', async () => {
    const a = await fetch(`${base}/metrics`, { headers: { authorization: 'Key k1' } });
    assert.equal(a.status, 200);
    const b = await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer id:secret' } });
    assert.equal(b.status, 200);
  });

  it('/healthz, /docs and /openapi.json stay open', async () => {
    for (const p of ['/healthz', '/docs', '/openapi.json']) assert.equal((await fetch(`${base}${p}`)).status, 200, p);
  });
});

describe('rate limit', () => {
  it('429 with Retry-After once a key used its burst; other keys are not affected', async () => {
    assert.equal((await submit('Key k1')).status, 422);
    assert.equal((await submit('Key k1')).status, 422);
    const r = await submit('Key k1');
    assert.equal(r.status, 429);
    assert.equal(((await r.json()) as any).error.code, 'RATE_LIMITED');
    const retry = Number(r.headers.get('retry-after'));
    assert.ok(retry >= 1 && retry <= 30, `Retry-After ${retry}`);
    assert.equal((await submit('Bearer id:secret')).status, 422);
  });

  it('token bucket refills at the configured rate', () => {
    let t = 0;
    const limiter = new RateLimiter(parseRateLimit('2/s'), () => t);
    limiter.take('a');
    limiter.take('a');
    assert.throws(() => limiter.take('a'), (e: any) => e.code === 'RATE_LIMITED' && e.retryAfterSeconds === 1);
    t = 0.5; // one token back
    limiter.take('a');
    assert.throws(() => limiter.take('a'));
  });

  it('parses rate strings and refuses nonsense', () => {
    assert.deepEqual(parseRateLimit('60/min'), { perSecond: 1, burst: 60, source: '60/min' });
    assert.equal(parseRateLimit('3600/h').perSecond, 1);
    assert.equal(parseRateLimit('10').perSecond, 10 / 60);
    assert.throws(() => parseRateLimit('fast'), /--rate-limit \/ ATELIER_RATE_LIMIT: "fast" is not valid/);
  });
});

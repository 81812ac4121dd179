/**
 * Hostile requests over real HTTP on loopback: huge numbers of keys, deep nesting, over-long URLs, paths leaving
 * /outputs/, malformed HTTP. Each gets a small answer in the documented `{ error: { code, message } }` shape, and the
 * server keeps answering others meanwhile.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../contract/types.ts';
import { MAX_BODY_DEPTH, MAX_BODY_KEYS } from './json-body.ts';
import { buildServer } from './server.ts';
import { createTestEngine, listen, tempDir, testConfig } from './test-support.ts';

let app: FastifyInstance;
let engine: Engine;
let base: string;
const tmp = tempDir();

before(async () => {
  engine = await createTestEngine();
  app = buildServer(testConfig(tmp.dir), { engine, logger: false, pollMs: 50 });
  base = await listen(app);
});
after(async () => {
  await app.close();
  await engine.close();
  tmp.remove();
});

interface Answer {
  status: number;
  text: string;
  body: any;
  headers: http.IncomingHttpHeaders;
}

/** A request with the path sent exactly as given (fetch would normalise `..`). */
function raw(method: string, path: string, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}/`, { method, path, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, text, body: JSON.parse(text), headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Our error shape: `{ error: { code, message, field? }, detail? }` and nothing else at the top level. */
function assertErrorShape(a: Answer, status: number, code: string): void {
  assert.equal(a.status, status, a.text.slice(0, 300));
  assert.match(String(a.headers['content-type']), /^application\/json/);
  assert.deepEqual(Object.keys(a.body).filter((k) => k !== 'detail'), ['error'], a.text.slice(0, 300));
  assert.equal(a.body.error.code, code);
  assert.equal(typeof a.body.error.message, 'string');
  assert.ok(a.text.length < 4096, `a small answer (${a.text.length} bytes)`);
}

const T2I = '/queue/sdxl/text-to-image';

describe('request bodies: key count and depth are bounded before validation', () => {
  it('300,000 unknown keys: a small 422 naming the count, while /healthz keeps answering', async () => {
    let json = '{"prompt":"x"';
    const parts: string[] = [];
    for (let i = 0; i < 300_000; i++) parts.push(`,"unknown_${i}":${i}`);
    json += parts.join('') + '}';
    assert.ok(json.length > 5_000_000);
    const submitted = raw('POST', T2I, json);
    const health = await raw('GET', '/healthz');
    assert.equal(health.status, 200);
    const a = await submitted;
    assertErrorShape(a, 422, 'INVALID_INPUT');
    assert.match(a.body.error.message, new RegExp(`^body: an object with 300001 fields; at most ${MAX_BODY_KEYS} allowed \\(first: "prompt", "unknown_0"`));
    assert.match(a.body.error.message, /and 299996 more\)$/);
    assert.equal(a.body.detail[0].type, 'too_many_fields');
    assert.deepEqual(a.body.detail[0].ctx, { max_fields: MAX_BODY_KEYS, fields: 300_001 });
  });

  it('up to the key limit, unknown fields: five named, the rest counted, the allowed fields listed once', async () => {
    const body: Record<string, unknown> = { prompt: 'x', num_images: 99 };
    for (let i = 0; i < 200; i++) body[`unknown_${i}`] = { big: 'v'.repeat(5000) };
    const a = await raw('POST', T2I, JSON.stringify(body));
    assertErrorShape(a, 422, 'UNKNOWN_FIELD');
    assert.match(a.body.error.message, /^unknown fields "unknown_0", "unknown_1", "unknown_2", "unknown_3", "unknown_4" and 195 more; allowed fields: prompt, /);
    assert.match(a.body.error.message, /\(and 1 more problem, see detail\)$/);
    assert.equal(a.body.error.message.split('allowed fields').length - 1, 1, 'the allowed fields appear once');
    assert.ok(a.body.detail.slice(1).every((d: any) => !d.msg.includes('allowed fields')), 'and not again per field');
    assert.deepEqual(
      a.body.detail.map((d: any) => [d.loc.slice(1).join('.'), d.type]),
      [...[0, 1, 2, 3, 4].map((i) => [`unknown_${i}`, 'extra_forbidden']), ['num_images', 'less_than_equal']],
    );
    assert.equal(a.body.detail[0].ctx.unknown_fields, 200);
    assert.equal(a.body.detail[0].input, undefined, 'a large value is not echoed back');
  });

  it('JSON nested 5,000 deep (arrays or objects, known field or not): a 422 in our shape, no stack overflow', async () => {
    const arrays = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    const objects = `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`;
    for (const body of [`{"prompt":"x","loras":${arrays}}`, objects, `{"prompt":"x","extra":${objects}}`, arrays]) {
      const a = await raw('POST', T2I, body);
      assertErrorShape(a, 422, 'INVALID_INPUT');
      assert.match(a.body.error.message, new RegExp(`nested more than ${MAX_BODY_DEPTH} levels deep`));
      assert.equal(a.body.detail[0].type, 'too_deep');
    }
    // the schema's own nesting is well inside the limit
    const ok = await raw('POST', T2I, JSON.stringify({ prompt: 'x', image_size: 'square', embeddings: [{ path: 'nope.safetensors', tokens: ['<a>'] }] }));
    assert.notEqual(ok.body.detail?.[0]?.type, 'too_deep');
  });
});

describe('every error answers in our shape, whatever layer raises it', () => {
  it('a 10,000-character request id: 414 in our shape, with the request id header', async () => {
    const a = await raw('GET', `${T2I}/requests/${'a'.repeat(10_000)}/status`);
    assertErrorShape(a, 414, 'URI_TOO_LONG');
    assert.ok(a.headers['x-request-id']);
  });

  it('/outputs/../x and other paths leaving the outputs folder: our shape', async () => {
    for (const p of ['/outputs/../x', '/outputs/%2e%2e/%2e%2e/etc/passwd']) assertErrorShape(await raw('GET', p), 403, 'FORBIDDEN');
    assertErrorShape(await raw('GET', '/outputs/00000000-0000-0000-0000-000000000000/0.png'), 404, 'NOT_FOUND');
  });

  it('unknown route, bad URL encoding, a long unknown path: our shape', async () => {
    assertErrorShape(await raw('GET', '/nope'), 404, 'NOT_FOUND');
    assertErrorShape(await raw('DELETE', '/healthz'), 404, 'NOT_FOUND');
    assertErrorShape(await raw('GET', '/queue/%zz/x'), 400, 'BAD_REQUEST');
    assertErrorShape(await raw('GET', `/${'x'.repeat(10_000)}`), 404, 'NOT_FOUND');
    assertErrorShape(await raw('GET', `/${'x'.repeat(20_000)}`), 431, 'HEADERS_TOO_LARGE'); // Node's 16 KiB header limit
  });

  it('malformed HTTP and oversized headers: our shape on the raw socket', async () => {
    const port = Number(new URL(base).port);
    const send = (text: string) =>
      new Promise<string>((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => s.write(text));
        let out = '';
        s.setEncoding('utf8');
        s.on('data', (d) => (out += d));
        s.on('end', () => resolve(out));
        s.on('error', reject);
      });
    const parse = (answer: string): Answer => {
      const [head, body] = answer.split('\r\n\r\n');
      const lines = head!.split('\r\n');
      const headers = Object.fromEntries(lines.slice(1).map((l) => [l.split(':')[0]!.toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      return { status: Number(lines[0]!.split(' ')[1]), text: body!, body: JSON.parse(body!), headers };
    };
    assertErrorShape(parse(await send('NOT HTTP AT ALL\r\n\r\n')), 400, 'BAD_REQUEST');
    assertErrorShape(parse(await send(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`)), 431, 'HEADERS_TOO_LARGE');
  });
});

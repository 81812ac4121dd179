/**
 * Several models chosen by `model`; LoRAs and embeddings by local name or URL (download cache) through the API.
 * The engine is observed (every GenerateRequest it receives is recorded), so these checks hold for any engine.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Engine, GenerateRequest } from '../contract/types.ts';
import { buildServer } from './server.ts';
import { createTestEngine, listen, tempDir, testConfig, waitFor } from './test-support.ts';

let app: FastifyInstance;
let engine: Engine;
let base: string;
let files: http.Server;
let filesUrl: string;
let fileHits = 0;
const received: GenerateRequest[] = [];
const tmp = tempDir();
const modelsDir = path.join(tmp.dir, 'comfy');

/** A syntactically valid .safetensors file with one tensor (not a usable LoRA). */
function tinySafetensors(): Buffer {
  const header = Buffer.from(JSON.stringify({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([len, header, Buffer.alloc(4)]);
}

before(async () => {
  fs.mkdirSync(path.join(modelsDir, 'models', 'loras'), { recursive: true });
  fs.mkdirSync(path.join(modelsDir, 'models', 'embeddings'), { recursive: true });
  fs.writeFileSync(path.join(modelsDir, 'models', 'loras', 'pixel.safetensors'), tinySafetensors());
  files = http.createServer((req, res) => {
    fileHits++;
    if (req.url === '/style.safetensors') res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(tinySafetensors());
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
  filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
  const inner = await createTestEngine({ models: ['tiny-a', 'tiny-b'] });
  engine = {
    listModels: () => inner.listModels(),
    close: () => inner.close(),
    generate: (request, options) => {
      received.push(request);
      return inner.generate(request, options);
    },
  };
  const defaultModel = engine.listModels().at(-1)!.name;
  const config = testConfig(path.join(tmp.dir, 'data'), { modelsDir });
  app = buildServer({ ...config, engine: { ...config.engine, defaultModel } }, { engine, logger: false, pollMs: 50 });
  base = await listen(app);
});
after(async () => {
  await app.close();
  await engine.close();
  files.close();
  tmp.remove();
});

async function run(input: Record<string, unknown>): Promise<{ status: number; body: any; request?: GenerateRequest }> {
  const r = await fetch(`${base}/queue/sdxl/text-to-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'm', image_size: { width: 64, height: 64 }, num_inference_steps: 2, ...input }),
  });
  const sub: any = await r.json();
  if (r.status !== 200) return { status: r.status, body: sub };
  const done: any = await waitFor(async () => {
    const s: any = await (await fetch(`${sub.status_url}?logs=1`)).json();
    return s.status === 'COMPLETED' ? s : undefined;
  });
  const seed = (await app.atelier.queue.get(sub.request_id))!.input.request.seed;
  return { status: 200, body: done, request: received.find((q) => q.seed === seed && q.prompt === 'm') };
}

describe('models and adapters through the API', () => {
  it('the `model` field switches the model; absent → the configured default', async () => {
    const [first, last] = [engine.listModels()[0]!.name, engine.listModels().at(-1)!.name];
    assert.notEqual(first, last, 'the engine serves two models');
    assert.equal((await run({ model: first, seed: 1 })).request?.model, first);
    assert.equal((await run({ seed: 2 })).request?.model, last);
    const doc: any = await (await fetch(`${base}/openapi.json`)).json();
    const model = doc.components.schemas.SdxlTextToImageInput.properties.model;
    assert.deepEqual([model.enum, model.default], [engine.listModels().map((m) => m.name), last]);
  });

  it('GET /v1/models lists checkpoints, LoRAs and embeddings available locally', async () => {
    fs.mkdirSync(path.join(modelsDir, 'models', 'embeddings', 'sub'), { recursive: true });
    fs.writeFileSync(path.join(modelsDir, 'models', 'embeddings', 'sub', 'concept.safetensors'), tinySafetensors());
    const r = await fetch(`${base}/v1/models`);
    assert.equal(r.status, 200);
    const body: any = await r.json();
    assert.deepEqual(body.checkpoints.map((c: any) => [c.name, c.default]), [['tiny-a', false], ['tiny-b', true]]);
    assert.ok(body.checkpoints.every((c: any) => c.is_test_model === true));
    assert.deepEqual(body.loras.map((l: any) => l.name), ['pixel']);
    assert.ok(body.loras[0].size_bytes > 0);
    assert.deepEqual(body.embeddings.map((l: any) => l.name), ['sub/concept']);
  });

  it('LoRAs by local name and by URL (downloaded once into the cache), embeddings by URL', async () => {
    const input = {
      loras: [
        { path: 'pixel', scale: 0.7 },
        { path: `${filesUrl}/style.safetensors`, scale: 1.5 },
      ],
      embeddings: [{ path: `${filesUrl}/style.safetensors` }],
    };
    const r = await run({ ...input, seed: 3 });
    // The files are not real LoRAs: an engine that loads them may refuse them, naming the field.
    assert.ok(r.body.error === undefined || r.body.error_type === 'ADAPTER_INVALID', JSON.stringify(r.body));
    const q = r.request!;
    assert.equal(q.loras[0]!.file, fs.realpathSync(path.join(modelsDir, 'models', 'loras', 'pixel.safetensors')));
    assert.equal(q.loras[0]!.scale, 0.7);
    assert.match(q.loras[1]!.file, /cache\/adapters\/[0-9a-f]{64}\.safetensors$/);
    assert.equal(q.loras[1]!.scale, 1.5);
    assert.deepEqual(q.embeddings, [{ file: q.loras[1]!.file, tokens: ['<s0>', '<s1>'] }]);
    const hits = fileHits;
    await run({ ...input, seed: 4 });
    assert.equal(fileHits, hits, 'the second request is served from the cache');
  });

  it('an unreachable LoRA URL ends the job with an explicit error naming the field', async () => {
    const r = await run({ loras: [{ path: `${filesUrl}/missing.safetensors` }] });
    assert.equal(r.body.error_type, 'IMAGE_FETCH_FAILED');
    assert.match(r.body.error, /loras\.0\.path/);
  });

  it('unsafe or unknown local names are refused at submit', async () => {
    let r = await run({ loras: [{ path: '../../../etc/passwd' }] });
    assert.deepEqual([r.status, r.body.error.field], [422, 'loras.0.path']);
    r = await run({ embeddings: [{ path: 'nothing-here' }] });
    assert.deepEqual([r.status, r.body.error.code], [422, 'ADAPTER_INVALID']);
  });
});

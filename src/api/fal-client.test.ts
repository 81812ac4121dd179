/**
 * The registry's @fal-ai/client, unmodified but for where it sends requests (its requestMiddleware),
 * driving the server over loopback: subscribe (queue + polling), status streaming, sync run, cancel.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApiError, fal } from '@fal-ai/client';
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../contract/types.ts';
import { buildServer } from './server.ts';
import { createTestEngine, listen, pngDataUri, tempDir, testConfig, waitFor } from './test-support.ts';

let app: FastifyInstance;
let engine: Engine;
let base: string;
const tmp = tempDir();
const seenUrls: string[] = [];

before(async () => {
  engine = await createTestEngine({ stepMs: 10 });
  app = buildServer(testConfig(tmp.dir, { apiKeys: ['fal-test-key'] }), { engine, logger: false, pollMs: 50 });
  base = await listen(app);
  fal.config({
    credentials: 'fal-test-key',
    // The only change a user makes: send fal's URLs to this server.
    requestMiddleware: async (request) => {
      const url = request.url
        .replace(/^https:\/\/queue\.fal\.run\//, `${base}/queue/`)
        .replace(/^https:\/\/fal\.run\//, `${base}/run/`);
      seenUrls.push(`${request.method} ${url}`);
      return { ...request, url };
    },
  });
});
after(async () => {
  await app.close();
  await engine.close();
  tmp.remove();
});

describe('@fal-ai/client against the server', () => {
  it('subscribe (queue with polling) on fal-ai/fast-sdxl/image-to-image, with logs', async () => {
    const updates: string[] = [];
    let enqueued = '';
    const result = await fal.subscribe('fal-ai/fast-sdxl/image-to-image', {
      input: {
        prompt: 'a watercolor fox',
        image_url: await pngDataUri(),
        strength: 0.8,
        image_size: { width: 64, height: 64 },
        num_inference_steps: 5,
        seed: 1234,
      },
      logs: true,
      pollInterval: 50,
      onEnqueue: (id) => (enqueued = id),
      onQueueUpdate: (u) => updates.push(u.status),
    });
    assert.equal(result.requestId, enqueued);
    const data = result.data as any;
    assert.equal(data.seed, 1234);
    assert.equal(data.images.length, 1);
    assert.equal(data.images[0].content_type, 'image/jpeg');
    assert.equal(updates.at(-1), 'COMPLETED');
    assert.ok(seenUrls.some((u) => u.startsWith(`GET ${base}/queue/fal-ai/fast-sdxl/requests/${enqueued}/status?logs=1`)));
    const img = await fetch(data.images[0].url);
    assert.equal(img.headers.get('content-type'), 'image/jpeg');
  });

  it('subscribe in streaming mode (server-sent status events) on fal-ai/fast-sdxl', async () => {
    const statuses: string[] = [];
    let logLines = 0;
    const result = await fal.subscribe('fal-ai/fast-sdxl', {
      input: { prompt: 'streamed', image_size: { width: 64, height: 64 }, num_inference_steps: 6 },
      mode: 'streaming',
      logs: true,
      onQueueUpdate: (u: any) => {
        statuses.push(u.status);
        if (Array.isArray(u.logs)) logLines = u.logs.length;
      },
    });
    assert.equal((result.data as any).images.length, 1);
    assert.equal(statuses.at(-1), 'COMPLETED');
    assert.ok(statuses.includes('IN_PROGRESS'));
    const stepLines = (await app.atelier.queue.logs(result.requestId)).length;
    assert.equal(logLines, stepLines, 'each log line arrives once (the client accumulates them)');
  });

  it('run (sync) returns the output directly', async () => {
    const result = await fal.run('fal-ai/fast-sdxl', {
      input: { prompt: 'direct', image_size: { width: 96, height: 72 }, num_inference_steps: 2, format: 'png', sync_mode: true },
    });
    const data = result.data as any;
    assert.equal(data.images[0].width, 96);
    assert.equal(data.images[0].height, 72);
    assert.match(data.images[0].url, /^data:image\/png;base64,/);
    assert.match(result.requestId, /^[0-9a-f-]{36}$/);
  });

  it('cancel a running request through the client', async () => {
    const { request_id } = await fal.queue.submit('fal-ai/fast-sdxl/image-to-image', {
      input: { prompt: 'to cancel', image_url: await pngDataUri(), num_inference_steps: 65, strength: 1, image_size: { width: 128, height: 128 } },
    });
    await waitFor(async () => (await fal.queue.status('fal-ai/fast-sdxl/image-to-image', { requestId: request_id })).status === 'IN_PROGRESS');
    await fal.queue.cancel('fal-ai/fast-sdxl/image-to-image', { requestId: request_id });
    const final: any = await waitFor(async () => {
      const s = await fal.queue.status('fal-ai/fast-sdxl/image-to-image', { requestId: request_id, logs: true });
      return s.status === 'COMPLETED' ? s : undefined;
    });
    assert.equal(final.error_type, 'CANCELLED');
    await assert.rejects(
      fal.queue.result('fal-ai/fast-sdxl/image-to-image', { requestId: request_id }),
      (e: unknown) => e instanceof ApiError && (e.body as any).error.code === 'CANCELLED',
    );
  });

  it('validation errors reach the client as a 422 with field errors', async () => {
    await assert.rejects(
      fal.run('fal-ai/fast-sdxl/image-to-image', { input: { prompt: 'x', image_url: 'data:,', strength: 2 } }),
      (e: any) => e.status === 422 && e.fieldErrors[0].loc.join('.') === 'body.strength',
    );
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../contract/types.ts';
import { buildServer } from './server.ts';
import { createTestEngine, listen, tempDir, testConfig, waitFor } from './test-support.ts';

let app: FastifyInstance;
let engine: Engine;
let base: string;
const tmp = tempDir();

before(async () => {
  engine = await createTestEngine({ stepMs: 10 });
  app = buildServer(testConfig(tmp.dir), { engine, logger: false, pollMs: 50 });
  base = await listen(app);
});
after(async () => {
  await app.close();
  await engine.close();
  tmp.remove();
});

async function submit(steps: number): Promise<any> {
  const r = await fetch(`${base}/queue/sdxl/text-to-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'stream', image_size: { width: 64, height: 64 }, num_inference_steps: steps }),
  });
  return r.json();
}

/** Read a whole event stream (it must end by itself); returns the parsed `data:` events. */
async function readStream(url: string): Promise<{ events: any[]; contentType: string | null }> {
  const r = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: AbortSignal.timeout(15_000) });
  assert.equal(r.status, 200);
  const text = await r.text(); // resolves only when the server closes the stream
  const events = text
    .split('\n\n')
    .filter((chunk) => chunk.startsWith('data: '))
    .map((chunk) => JSON.parse(chunk.slice(6)));
  return { events, contentType: r.headers.get('content-type') };
}

describe('status stream (server-sent events)', () => {
  it('sends IN_QUEUE with its position, IN_PROGRESS, then COMPLETED and closes; each log line once', async () => {
    const first = await submit(20);
    await waitFor(async () => app.atelier.runner.runningJobId === first.request_id);
    const second = await submit(5);
    const { events, contentType } = await readStream(`${second.status_url}/stream?logs=1`);
    assert.equal(contentType, 'text/event-stream; charset=utf-8');
    const statuses = events.map((e) => e.status);
    assert.equal(statuses[0], 'IN_QUEUE');
    assert.equal(events[0].queue_position, 0);
    assert.ok(statuses.includes('IN_PROGRESS'));
    assert.equal(statuses.at(-1), 'COMPLETED');
    assert.equal(statuses.filter((s) => s === 'COMPLETED').length, 1);
    const lines = events.flatMap((e) => e.logs ?? []).map((l: any) => l.message);
    const stored = (await app.atelier.queue.logs(second.request_id)).map((l) => l.message);
    assert.deepEqual(lines, stored);
    assert.ok(lines.some((l) => l.startsWith('step 5/5')));
  });

  it('without logs=1 no log lines are sent; a finished request streams one COMPLETED event', async () => {
    const job = await submit(3);
    const live = await readStream(`${job.status_url}/stream`);
    assert.ok(live.events.every((e) => e.logs === undefined || e.logs === null));
    assert.equal(live.events.at(-1).status, 'COMPLETED');
    const again = await readStream(`${job.status_url}/stream?logs=1`);
    assert.equal(again.events.length, 1);
    assert.equal(again.events[0].status, 'COMPLETED');
    assert.ok(again.events[0].logs.length > 3);
  });

  it('unknown request: a JSON 404, not a stream', async () => {
    const r = await fetch(`${base}/queue/sdxl/text-to-image/requests/nope/status/stream`);
    assert.equal(r.status, 404);
    assert.equal(((await r.json()) as any).error.code, 'NOT_FOUND');
  });
});

/** Graceful shutdown in-process: the running job finishes within the grace period, or goes back to the queue. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { Engine } from '../contract/types.ts';
import { SqliteQueue } from '../jobs/sqlite-queue.ts';
import { buildServer } from './server.ts';
import { createTestEngine, listen, tempDir, testConfig, waitFor } from './test-support.ts';

const tmp = tempDir();
const engines: Engine[] = [];
after(async () => {
  for (const e of engines) await e.close();
  tmp.remove();
});

async function server(name: string, graceMs: number) {
  const engine = await createTestEngine({ stepMs: 20 });
  engines.push(engine);
  const dir = path.join(tmp.dir, name);
  const app = buildServer(testConfig(dir, { shutdownGraceMs: graceMs }), { engine, logger: false, pollMs: 50 });
  const base = await listen(app);
  const submit = async (steps: number, route = 'queue') => {
    const r = await fetch(`${base}/${route}/sdxl/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 's', image_size: { width: 128, height: 128 }, num_inference_steps: steps }),
    });
    return r;
  };
  return { app, base, submit, store: () => new SqliteQueue(path.join(dir, 'jobs.sqlite')) };
}

describe('graceful shutdown', () => {
  it('lets the running job finish within the grace period; ends open status streams', async () => {
    const s = await server('finish', 5000);
    const sub: any = await (await s.submit(15)).json();
    await waitFor(async () => s.app.atelier.runner.runningJobId === sub.request_id);
    const other: any = await (await s.submit(15)).json();
    const stream = fetch(`${other.status_url}/stream`).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 50));
    const closing = s.app.close();
    const during = await fetch(`${s.base}/healthz`).catch((e: unknown) => e);
    assert.ok(during instanceof Response, `request during shutdown: ${String(during)}`);
    {
      assert.equal(during.status, 503);
      assert.equal(((await during.json()) as any).error.code, 'SHUTTING_DOWN');
    }
    await closing;
    const text = await stream;
    assert.match(text, /"status":"IN_QUEUE"/);
    const q = s.store();
    assert.equal((await q.get(sub.request_id))?.state, 'completed');
    assert.equal((await q.get(other.request_id))?.state, 'queued', 'the next job waits for the next start');
    await q.close();
  });

  it('re-queues the running job when the grace period runs out; waiting sync requests are answered with SHUTTING_DOWN', async () => {
    const s = await server('requeue', 100);
    const sub: any = await (await s.submit(65)).json();
    await waitFor(async () => s.app.atelier.runner.runningJobId === sub.request_id);
    await s.app.close();
    let q = s.store();
    const job = await q.get(sub.request_id);
    assert.equal(job?.state, 'queued');
    assert.equal(job?.attempts, 0, 'a graceful stop does not use up an attempt');
    assert.ok((await q.logs(sub.request_id)).some((l) => /re-queued/.test(l.message)));
    await q.close();

    const t = await server('sync', 100);
    const running = t.submit(65, 'run');
    await waitFor(async () => t.app.atelier.runner.runningJobId);
    const waiting = t.submit(5, 'run'); // queued behind it
    await waitFor(async () => (await t.app.atelier.queue.counts()).queued === 1);
    const closing = t.app.close();
    for (const r of await Promise.all([running, waiting])) {
      assert.equal(r.status, 503);
      assert.equal(((await r.json()) as any).error.code, 'SHUTTING_DOWN');
    }
    await closing;
    q = t.store();
    assert.deepEqual(await q.counts(), { queued: 0, running: 0, completed: 0, failed: 2, cancelled: 0 });
    await q.close();
  });
});

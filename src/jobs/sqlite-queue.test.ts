import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { tempDir } from '../api/test-support.ts';
import type { JobEvent, NewJob } from './queue.ts';
import { SqliteQueue } from './sqlite-queue.ts';

const tmp = tempDir();
after(() => tmp.remove());

function newJob(id: string, mode: 'queue' | 'sync' = 'queue'): NewJob {
  return {
    id,
    endpoint: 'sdxl/text-to-image',
    app: 'sdxl/text-to-image',
    mode,
    baseUrl: 'http://127.0.0.1:1',
    input: {
      request: {
        task: 'text-to-image',
        prompt: 'p',
        negativePrompt: null,
        strength: 1,
        width: 64,
        height: 64,
        numImages: 1,
        steps: 2,
        guidanceScale: 7.5,
        guidanceRescale: 0,
        seed: 1,
        sampler: 'euler',
        timestepSpacing: 'leading',
      },
      loras: [],
      embeddings: [],
      output: { finalWidth: 64, finalHeight: 64, format: 'jpeg', syncMode: false, enableSafetyChecker: true, expandPrompt: false },
    },
  };
}

describe('SqliteQueue', () => {
  it('keeps FIFO order and reports queue positions', async () => {
    const q = new SqliteQueue(path.join(tmp.dir, 'order.sqlite'));
    for (const id of ['a', 'b', 'c']) await q.add(newJob(id));
    assert.deepEqual([await q.queuePosition('a'), await q.queuePosition('b'), await q.queuePosition('c')], [0, 1, 2]);
    const first = await q.claim();
    assert.equal(first?.id, 'a');
    assert.equal(first?.attempts, 1);
    assert.equal(await q.queuePosition('a'), undefined, 'a running job has no queue position');
    assert.deepEqual([await q.queuePosition('b'), await q.queuePosition('c')], [0, 1]);
    assert.equal(await q.cancel('b'), 'CANCELLATION_REQUESTED');
    assert.equal((await q.get('b'))?.state, 'cancelled');
    assert.equal(await q.queuePosition('c'), 0, 'a cancelled job no longer counts');
    await q.close();
  });

  it('cancel: queued at once, running by flag, finished → ALREADY_COMPLETED, unknown → NOT_FOUND', async () => {
    const q = new SqliteQueue(path.join(tmp.dir, 'cancel.sqlite'));
    const events: JobEvent[] = [];
    q.subscribe((e) => events.push(e));
    await q.add(newJob('r'));
    await q.claim();
    assert.equal(await q.cancel('r'), 'CANCELLATION_REQUESTED');
    assert.equal((await q.get('r'))?.cancelRequested, true);
    assert.ok(events.some((e) => e.type === 'cancel-requested' && e.id === 'r'));
    await q.fail('r', { code: 'CANCELLED', message: 'x' }, 'cancelled');
    assert.equal(await q.cancel('r'), 'ALREADY_COMPLETED');
    assert.equal(await q.cancel('nope'), 'NOT_FOUND');
    await q.close();
  });

  it('recovers after a crash: re-queues once, then fails with WORKER_CRASHED; sync jobs fail at once', async () => {
    const file = path.join(tmp.dir, 'crash.sqlite');
    let q = new SqliteQueue(file);
    await q.add(newJob('x'));
    await q.add(newJob('s', 'sync'));
    await q.add(newJob('waiting-sync', 'sync'));
    await q.claim(); // x running, attempt 1
    await q.claim(); // s running
    // Simulated crash: the store is reopened without finishing anything.
    q = new SqliteQueue(file);
    let r = await q.recover(2);
    assert.deepEqual(r.requeued, ['x']);
    assert.deepEqual(r.failed.sort(), ['s', 'waiting-sync']);
    assert.equal((await q.get('s'))?.error?.code, 'WORKER_CRASHED');
    const again = await q.claim();
    assert.equal(again?.id, 'x');
    assert.equal(again?.attempts, 2);
    q = new SqliteQueue(file);
    r = await q.recover(2);
    assert.deepEqual(r, { requeued: [], failed: ['x'] });
    const x = await q.get('x');
    assert.equal(x?.state, 'failed');
    assert.equal(x?.error?.code, 'WORKER_CRASHED');
    assert.match(x!.error!.message, /2 times/);
    assert.ok((await q.logs('x')).some((l) => /re-queued/.test(l.message)));
    await q.close();
  });

  it('graceful requeue does not count the attempt; results and webhooks are stored', async () => {
    const q = new SqliteQueue(path.join(tmp.dir, 'requeue.sqlite'));
    await q.add({ ...newJob('w'), webhookUrl: 'http://127.0.0.1:9/hook', inputImage: new Uint8Array([1, 2, 3]) });
    await q.claim();
    await q.requeue('w');
    const j = await q.get('w');
    assert.equal(j?.state, 'queued');
    assert.equal(j?.attempts, 0);
    assert.deepEqual([...(await q.inputImage('w'))!], [1, 2, 3]);
    await q.claim();
    await q.complete('w', { images: [] });
    assert.deepEqual((await q.get('w'))?.result, { images: [] });
    assert.equal(await q.inputImage('w'), undefined, 'the input image is dropped once finished');
    assert.deepEqual((await q.pendingWebhooks()).map((p) => p.id), ['w']);
    await q.setWebhookState('w', 'delivered', 1);
    assert.deepEqual(await q.pendingWebhooks(), []);
    await q.purgeResult('w');
    const purged = await q.get('w');
    assert.equal(purged?.resultPurged, true);
    assert.equal(purged?.result, undefined);
    assert.deepEqual(await q.counts(), { queued: 0, running: 0, completed: 1, failed: 0, cancelled: 0 });
    await q.close();
  });

  it('stores the owner hash of a job; a store from before owners is migrated and keeps its jobs (owner absent)', async () => {
    const file = path.join(tmp.dir, 'old.sqlite');
    // The jobs table as the first release wrote it (no owner column), with one finished job in it.
    const old = new Database(file);
    old.exec(`CREATE TABLE jobs (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, endpoint TEXT NOT NULL, app TEXT NOT NULL,
      mode TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
      cancel_requested INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,
      input TEXT NOT NULL, input_image BLOB, result TEXT, result_purged INTEGER NOT NULL DEFAULT 0, error TEXT,
      webhook_url TEXT, webhook_state TEXT, webhook_attempts INTEGER NOT NULL DEFAULT 0, base_url TEXT NOT NULL)`);
    old
      .prepare(`INSERT INTO jobs (id, endpoint, app, mode, state, created_at, input, result, base_url) VALUES (?, ?, ?, 'queue', 'completed', 1, ?, ?, ?)`)
      .run('legacy', 'sdxl/text-to-image', 'sdxl/text-to-image', JSON.stringify(newJob('legacy').input), '{"images":[]}', 'http://127.0.0.1:1');
    old.close();
    let q = new SqliteQueue(file);
    const legacy = await q.get('legacy');
    assert.equal(legacy?.state, 'completed');
    assert.deepEqual(legacy?.result, { images: [] });
    assert.equal(legacy?.owner, undefined);
    await q.add({ ...newJob('owned'), owner: 'a'.repeat(64) });
    await q.add(newJob('open'));
    await q.close();
    q = new SqliteQueue(file); // opening a migrated store again changes nothing
    assert.equal((await q.get('owned'))?.owner, 'a'.repeat(64));
    assert.equal((await q.get('open'))?.owner, undefined);
    assert.equal((await q.get('legacy'))?.owner, undefined);
    await q.close();
  });
});

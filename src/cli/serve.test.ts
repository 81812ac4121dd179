/**
 * Durability with a real server process: kill -9 mid-job and restart (twice, to reach the attempt limit),
 * then SIGTERM for a graceful shutdown that re-queues the running job.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { tempDir, waitFor } from '../api/test-support.ts';
import { repoRoot } from '../paths.ts';

const tmp = tempDir('atelier-serve-');
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
  tmp.remove();
});

interface Server {
  child: ChildProcess;
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output: () => string;
}

/** Start `atelier serve` (with the test engine) on a random port; resolves once it listens. */
async function start(dataDir: string, extra: string[] = []): Promise<Server> {
  const entry = path.join(repoRoot, 'src/api/test-server-entry.ts');
  const args = ['--import', 'tsx', entry, '--port', '0', '--data-dir', dataDir, '--allow-network', '127.0.0.0/8', ...extra];
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, ATELIER_TEST_STEP_MS: '25', ATELIER_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  const url = await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`server exited early:\n${out}`);
    return /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out)?.[1];
  }, 30_000, 20);
  return { child, url, exited, output: () => out };
}

/** Long jobs are larger (256², 65 steps) so that even a fast engine is caught mid-run. */
async function submit(url: string, steps: number): Promise<string> {
  const r = await fetch(`${url}/queue/sdxl/text-to-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'durable', image_size: steps > 10 ? { width: 256, height: 256 } : { width: 64, height: 64 }, num_inference_steps: steps }),
  });
  assert.equal(r.status, 200);
  return ((await r.json()) as { request_id: string }).request_id;
}

async function status(url: string, id: string): Promise<any> {
  return (await fetch(`${url}/queue/sdxl/text-to-image/requests/${id}/status?logs=1`)).json();
}

async function stepsLogged(url: string, id: string): Promise<number> {
  const s = await status(url, id);
  return (s.logs ?? []).filter((l: { message: string }) => l.message.startsWith('step ')).length;
}

describe('serve: durability across kill -9 and SIGTERM', () => {
  it('every accepted job completes or ends with an explicit error', async () => {
    const dir = path.join(tmp.dir, 'durability');
    // 1. First server: two queued jobs and a sync request in flight; killed while the first job runs.
    let s = await start(dir);
    const a = await submit(s.url, 65);
    const b = await submit(s.url, 4);
    await waitFor(async () => (await stepsLogged(s.url, a)) >= 2);
    const syncReq = fetch(`${s.url}/run/sdxl/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'sync', image_size: { width: 64, height: 64 }, num_inference_steps: 3 }),
    }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100)); // let the sync job be accepted
    s.child.kill('SIGKILL');
    assert.equal((await s.exited).signal, 'SIGKILL');
    assert.ok((await syncReq) instanceof Error, 'the sync client lost its connection');

    // 2. Restart: job a runs again (attempt 2) ... and is killed again mid-run.
    s = await start(dir);
    await waitFor(async () => {
      const st = await status(s.url, a);
      return st.status === 'IN_PROGRESS' && st.logs.some((l: { message: string }) => l.message === 'started (attempt 2)') && (await stepsLogged(s.url, a)) >= 2;
    });
    s.child.kill('SIGKILL');
    await s.exited;

    // 3. Restart: a has used its attempts → explicit WORKER_CRASHED; b completes; the orphaned sync job failed explicitly.
    s = await start(dir, ['--shutdown-grace', '300']);
    const finalA = await status(s.url, a);
    assert.equal(finalA.status, 'COMPLETED');
    assert.equal(finalA.error_type, 'WORKER_CRASHED');
    const finalB = await waitFor(async () => {
      const st = await status(s.url, b);
      return st.status === 'COMPLETED' ? st : undefined;
    });
    assert.equal(finalB.error, undefined);
    const result: any = await (await fetch(finalB.response_url)).json();
    assert.equal(result.images.length, 1);
    const health: any = await (await fetch(`${s.url}/healthz`)).json();
    assert.deepEqual(health.queue, { queued: 0, running: 0 }, 'nothing stuck');
    assert.match(s.output(), /recovered jobs left by a previous run/);

    // 4. SIGTERM while a long job runs: the grace period (300 ms) is too short, so it is re-queued and the process exits 0.
    const c = await submit(s.url, 65);
    await waitFor(async () => (await stepsLogged(s.url, c)) >= 1);
    s.child.kill('SIGTERM');
    assert.deepEqual(await s.exited, { code: 0, signal: null });

    // 5. After restart the re-queued job runs to completion (the graceful stop did not use up an attempt).
    s = await start(dir);
    const finalC = await waitFor(async () => {
      const st = await status(s.url, c);
      return st.status === 'COMPLETED' ? st : undefined;
    }, 20_000);
    assert.equal(finalC.error, undefined);
    const messages = finalC.logs.map((l: { message: string }) => l.message);
    assert.ok(messages.includes('the server is shutting down; re-queued to run again after restart'));
    assert.equal(messages.filter((m: string) => m === 'started (attempt 1)').length, 2);
    s.child.kill('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('refuses a second server on the same data folder', async () => {
    const dir = path.join(tmp.dir, 'lock');
    const s = await start(dir);
    const second = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/api/test-server-entry.ts'), '--port', '0', '--data-dir', dir], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    second.stderr.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((r) => second.on('exit', r));
    assert.notEqual(code, 0);
    assert.match(err, /another Atelier server \(pid \d+\) is using the data folder/);
    s.child.kill('SIGTERM');
    await s.exited;
  });
});

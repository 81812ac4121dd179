/**
 * JobQueue over the embedded SQLite store, with in-process events for the runner, SSE streams and webhooks.
 */
import { EventEmitter } from 'node:events';
import { JobStore } from './job-store.ts';
import type { CancelOutcome, Job, JobError, JobEvent, JobLog, JobQueue, JobState, NewJob } from './queue.ts';

export class SqliteQueue implements JobQueue {
  private readonly store: JobStore;
  private readonly events = new EventEmitter();
  private readonly now: () => number;

  constructor(file: string, opts: { now?: () => number } = {}) {
    this.store = new JobStore(file);
    this.now = opts.now ?? Date.now;
    this.events.setMaxListeners(0);
  }

  async add(job: NewJob): Promise<Job> {
    const created = this.store.insert(job, this.now());
    this.emit({ type: 'added', id: job.id });
    return created;
  }

  async get(id: string): Promise<Job | undefined> {
    return this.store.get(id);
  }

  async inputImage(id: string): Promise<Uint8Array | undefined> {
    return this.store.inputImage(id);
  }

  async queuePosition(id: string): Promise<number | undefined> {
    return this.store.position(id);
  }

  async logs(id: string): Promise<JobLog[]> {
    return this.store.logs(id);
  }

  async appendLog(id: string, log: JobLog): Promise<void> {
    this.store.appendLog(id, log);
    this.emit({ type: 'log', id, log });
  }

  async claim(): Promise<Job | undefined> {
    const job = this.store.claim(this.now());
    if (job) this.emit({ type: 'state', id: job.id, state: 'running' });
    return job;
  }

  async complete(id: string, result: unknown): Promise<void> {
    if (this.store.finish(id, 'completed', this.now(), result)) this.emit({ type: 'state', id, state: 'completed' });
  }

  async fail(id: string, error: JobError, state: 'failed' | 'cancelled' = 'failed'): Promise<void> {
    if (this.store.finish(id, state, this.now(), undefined, error)) this.emit({ type: 'state', id, state });
  }

  async cancel(id: string): Promise<CancelOutcome> {
    const seen = this.store.cancel(id, this.now());
    if (seen === undefined) return 'NOT_FOUND';
    if (seen === 'queued') {
      this.emit({ type: 'state', id, state: 'cancelled' });
      return 'CANCELLATION_REQUESTED';
    }
    if (seen === 'running') {
      this.emit({ type: 'cancel-requested', id });
      return 'CANCELLATION_REQUESTED';
    }
    return 'ALREADY_COMPLETED';
  }

  async requeue(id: string): Promise<void> {
    this.store.requeue(id, false);
    this.emit({ type: 'state', id, state: 'queued' });
  }

  async recover(maxAttempts: number): Promise<{ requeued: string[]; failed: string[] }> {
    const requeued: string[] = [];
    const failed: string[] = [];
    const ts = new Date(this.now()).toISOString();
    const tx = this.store.db.transaction(() => {
      for (const job of this.store.byState('running')) {
        if (job.mode === 'sync') {
          this.store.finish(job.id, 'failed', this.now(), undefined, {
            code: 'WORKER_CRASHED',
            message: 'the server stopped while running this synchronous request; its connection is gone, so it was not restarted',
          });
          failed.push(job.id);
        } else if (job.attempts < maxAttempts) {
          this.store.requeue(job.id, true);
          this.store.appendLog(job.id, {
            level: 'WARN',
            timestamp: ts,
            message: `the server stopped during attempt ${job.attempts}; re-queued (attempt ${job.attempts + 1} of ${maxAttempts} to come)`,
          });
          requeued.push(job.id);
        } else {
          this.store.finish(job.id, 'failed', this.now(), undefined, {
            code: 'WORKER_CRASHED',
            message: `the server stopped while running this request ${job.attempts} times; giving up (limit ${maxAttempts} attempts)`,
          });
          failed.push(job.id);
        }
      }
      for (const job of this.store.byState('queued')) {
        if (job.mode !== 'sync') continue;
        this.store.finish(job.id, 'failed', this.now(), undefined, {
          code: 'WORKER_CRASHED',
          message: 'the server restarted before this synchronous request started; its connection is gone',
        });
        failed.push(job.id);
      }
    });
    tx();
    for (const id of failed) this.emit({ type: 'state', id, state: 'failed' });
    for (const id of requeued) this.emit({ type: 'state', id, state: 'queued' });
    return { requeued, failed };
  }

  async purgeResult(id: string): Promise<void> {
    this.store.purgeResult(id);
  }

  async setWebhookState(id: string, state: 'pending' | 'delivered' | 'failed', attempts: number): Promise<void> {
    this.store.setWebhookState(id, state, attempts);
  }

  async pendingWebhooks(): Promise<Job[]> {
    return this.store.pendingWebhooks();
  }

  async counts(): Promise<Record<JobState, number>> {
    return this.store.counts();
  }

  subscribe(listener: (event: JobEvent) => void): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }

  async close(): Promise<void> {
    this.store.close();
  }

  private emit(event: JobEvent): void {
    this.events.emit('event', event);
  }
}

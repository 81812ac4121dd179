/**
 * The jobs table in an embedded SQLite database (better-sqlite3, WAL journal).
 * Plain synchronous statements; sqlite-queue.ts adds events and the async JobQueue face.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Job, JobError, JobInput, JobLog, JobState, NewJob } from './queue.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  endpoint TEXT NOT NULL,
  app TEXT NOT NULL,
  mode TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  input TEXT NOT NULL,
  input_image BLOB,
  result TEXT,
  result_purged INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  webhook_url TEXT,
  webhook_state TEXT,
  webhook_attempts INTEGER NOT NULL DEFAULT 0,
  base_url TEXT NOT NULL,
  owner TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state_seq ON jobs (state, seq);
CREATE TABLE IF NOT EXISTS job_logs (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL,
  ts TEXT NOT NULL,
  level TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_logs_job ON job_logs (job_id, n);
`;

interface Row {
  seq: number;
  id: string;
  endpoint: string;
  app: string;
  mode: 'queue' | 'sync';
  state: JobState;
  attempts: number;
  cancel_requested: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  input: string;
  result: string | null;
  result_purged: number;
  error: string | null;
  webhook_url: string | null;
  webhook_state: 'pending' | 'delivered' | 'failed' | null;
  webhook_attempts: number;
  base_url: string;
  owner: string | null;
}

const COLUMNS = `seq, id, endpoint, app, mode, state, attempts, cancel_requested, created_at, started_at, finished_at,
  input, result, result_purged, error, webhook_url, webhook_state, webhook_attempts, base_url, owner`;

/**
 * Columns added after the first release, with their definitions: a store written by an older version gets them
 * (ALTER TABLE ADD COLUMN keeps every row; the new column is NULL there).
 */
const ADDED_COLUMNS: readonly [string, string][] = [['owner', 'TEXT']];

export class JobStore {
  readonly db: Database.Database;

  constructor(file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a committed job survives a process crash (kill -9); only an OS crash can lose the last commits.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.migrate();
  }

  private migrate(): void {
    const have = new Set((this.db.prepare('PRAGMA table_info(jobs)').all() as { name: string }[]).map((c) => c.name));
    for (const [name, type] of ADDED_COLUMNS) {
      if (!have.has(name)) this.db.exec(`ALTER TABLE jobs ADD COLUMN ${name} ${type}`);
    }
  }

  insert(job: NewJob, now: number): Job {
    this.db
      .prepare(
        `INSERT INTO jobs (id, endpoint, app, mode, state, created_at, input, input_image, webhook_url, webhook_state, base_url, owner)
         VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        job.id,
        job.endpoint,
        job.app,
        job.mode,
        now,
        JSON.stringify(job.input),
        job.inputImage ? Buffer.from(job.inputImage.buffer, job.inputImage.byteOffset, job.inputImage.byteLength) : null,
        job.webhookUrl ?? null,
        job.webhookUrl ? 'pending' : null,
        job.baseUrl,
        job.owner ?? null,
      );
    return this.get(job.id)!;
  }

  get(id: string): Job | undefined {
    const row = this.db.prepare(`SELECT ${COLUMNS} FROM jobs WHERE id = ?`).get(id) as Row | undefined;
    return row ? toJob(row) : undefined;
  }

  inputImage(id: string): Uint8Array | undefined {
    const row = this.db.prepare('SELECT input_image FROM jobs WHERE id = ?').get(id) as { input_image: Buffer | null } | undefined;
    return row?.input_image ? new Uint8Array(row.input_image) : undefined;
  }

  position(id: string): number | undefined {
    const row = this.db.prepare(`SELECT seq, state FROM jobs WHERE id = ?`).get(id) as { seq: number; state: JobState } | undefined;
    if (!row || row.state !== 'queued') return undefined;
    const r = this.db.prepare(`SELECT COUNT(*) AS n FROM jobs WHERE state = 'queued' AND seq < ?`).get(row.seq) as { n: number };
    return r.n;
  }

  logs(id: string): JobLog[] {
    const rows = this.db.prepare('SELECT ts, level, message FROM job_logs WHERE job_id = ? ORDER BY n').all(id) as {
      ts: string;
      level: JobLog['level'];
      message: string;
    }[];
    return rows.map((r) => ({ message: r.message, level: r.level, timestamp: r.ts }));
  }

  appendLog(id: string, log: JobLog): void {
    this.db.prepare('INSERT INTO job_logs (job_id, ts, level, message) VALUES (?, ?, ?, ?)').run(id, log.timestamp, log.level, log.message);
  }

  /** Atomically move the oldest queued job to running. */
  claim(now: number): Job | undefined {
    const tx = this.db.transaction(() => {
      const row = this.db.prepare(`SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1`).get() as { id: string } | undefined;
      if (!row) return undefined;
      this.db.prepare(`UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ? WHERE id = ?`).run(now, row.id);
      return this.get(row.id);
    });
    return tx();
  }

  /** Finish a job unless it already finished; the input image is dropped (no longer needed). */
  finish(id: string, state: 'completed' | 'failed' | 'cancelled', now: number, result?: unknown, error?: JobError): boolean {
    const info = this.db
      .prepare(
        `UPDATE jobs SET state = ?, finished_at = ?, result = ?, error = ?, input_image = NULL
         WHERE id = ? AND state IN ('queued', 'running')`,
      )
      .run(state, now, result === undefined ? null : JSON.stringify(result), error ? JSON.stringify(error) : null, id);
    return info.changes === 1;
  }

  /** queued → cancelled, running → cancel flag. Returns the state seen. */
  cancel(id: string, now: number): JobState | undefined {
    const tx = this.db.transaction(() => {
      const row = this.db.prepare('SELECT state FROM jobs WHERE id = ?').get(id) as { state: JobState } | undefined;
      if (!row) return undefined;
      if (row.state === 'queued') {
        const err: JobError = { code: 'CANCELLED', message: 'cancelled before it started' };
        this.finish(id, 'cancelled', now, undefined, err);
      } else if (row.state === 'running') {
        this.db.prepare('UPDATE jobs SET cancel_requested = 1 WHERE id = ?').run(id);
      }
      return row.state;
    });
    return tx();
  }

  requeue(id: string, countAttempt: boolean): void {
    this.db
      .prepare(
        `UPDATE jobs SET state = 'queued', started_at = NULL, attempts = attempts - ? WHERE id = ? AND state = 'running'`,
      )
      .run(countAttempt ? 0 : 1, id);
  }

  byState(state: JobState): Job[] {
    const rows = this.db.prepare(`SELECT ${COLUMNS} FROM jobs WHERE state = ? ORDER BY seq`).all(state) as Row[];
    return rows.map(toJob);
  }

  purgeResult(id: string): void {
    this.db.prepare('UPDATE jobs SET result = NULL, result_purged = 1 WHERE id = ?').run(id);
  }

  setWebhookState(id: string, state: string, attempts: number): void {
    this.db.prepare('UPDATE jobs SET webhook_state = ?, webhook_attempts = ? WHERE id = ?').run(state, attempts, id);
  }

  pendingWebhooks(): Job[] {
    const rows = this.db
      .prepare(`SELECT ${COLUMNS} FROM jobs WHERE webhook_state = 'pending' AND state IN ('completed', 'failed', 'cancelled') ORDER BY seq`)
      .all() as Row[];
    return rows.map(toJob);
  }

  counts(): Record<JobState, number> {
    const out: Record<JobState, number> = { queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };
    const rows = this.db.prepare('SELECT state, COUNT(*) AS n FROM jobs GROUP BY state').all() as { state: JobState; n: number }[];
    for (const r of rows) out[r.state] = r.n;
    return out;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function toJob(r: Row): Job {
  return {
    seq: r.seq,
    id: r.id,
    endpoint: r.endpoint,
    app: r.app,
    mode: r.mode,
    state: r.state,
    attempts: r.attempts,
    cancelRequested: r.cancel_requested === 1,
    createdAt: r.created_at,
    ...(r.started_at !== null ? { startedAt: r.started_at } : {}),
    ...(r.finished_at !== null ? { finishedAt: r.finished_at } : {}),
    input: JSON.parse(r.input) as JobInput,
    ...(r.result !== null ? { result: JSON.parse(r.result) as unknown } : {}),
    resultPurged: r.result_purged === 1,
    ...(r.error !== null ? { error: JSON.parse(r.error) as JobError } : {}),
    ...(r.webhook_url !== null ? { webhookUrl: r.webhook_url } : {}),
    ...(r.webhook_state !== null ? { webhookState: r.webhook_state } : {}),
    webhookAttempts: r.webhook_attempts,
    baseUrl: r.base_url,
    ...(r.owner !== null ? { owner: r.owner } : {}),
  };
}

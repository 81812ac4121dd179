/**
 * The job queue seen by routes and the runner. The embedded implementation is SQLite
 * (sqlite-queue.ts); a Redis/BullMQ one can implement the same interface without touching routes.
 * Every method is async so that a networked store fits.
 */
import type { GenerateRequest, OutputOptions, TimestepSpacing, SamplerName } from '../contract/types.ts';

export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
export const TERMINAL_STATES: readonly JobState[] = ['completed', 'failed', 'cancelled'];

export interface JobError {
  code: string;
  message: string;
  field?: string;
}

export interface JobLog {
  message: string;
  level: 'INFO' | 'WARN' | 'ERROR' | 'DEBUG';
  /** ISO 8601 */
  timestamp: string;
}

/** An adapter as stored with the job: a local file already resolved, or a URL fetched by the runner. */
export interface AdapterSource {
  kind: 'file' | 'url';
  /** absolute path (file) or URL */
  source: string;
}

/** Everything the runner needs, JSON-serialisable (the input image travels separately as PNG bytes). */
export interface JobInput {
  request: Omit<GenerateRequest, 'image' | 'loras' | 'embeddings' | 'sampler' | 'timestepSpacing'> & {
    sampler: SamplerName;
    timestepSpacing: TimestepSpacing;
  };
  loras: (AdapterSource & { scale: number })[];
  embeddings: (AdapterSource & { tokens: string[] })[];
  output: OutputOptions & {
    /** the delivered size and the region of the generated image kept (preserve_aspect_ratio + crop_output) */
    finalWidth: number;
    finalHeight: number;
    crop?: { left: number; top: number; width: number; height: number };
  };
  /** the HTTP request id of the submission, for log correlation */
  httpRequestId?: string;
}

export interface NewJob {
  id: string;
  /** canonical endpoint id, e.g. "sdxl/image-to-image" */
  endpoint: string;
  /** `{owner}/{app}` used in this job's URLs */
  app: string;
  /** 'sync' jobs belong to an open /run connection: after a crash nobody waits for them */
  mode: 'queue' | 'sync';
  input: JobInput;
  /** PNG bytes of the decoded, resized input image */
  inputImage?: Uint8Array;
  webhookUrl?: string;
  /** scheme://host of absolute URLs in this job's responses */
  baseUrl: string;
  /** hash of the API key that submitted it (never the key); absent without keys and on jobs from before owners */
  owner?: string;
}

export interface Job extends Omit<NewJob, 'inputImage'> {
  seq: number;
  state: JobState;
  /** how many times a runner has started it */
  attempts: number;
  cancelRequested: boolean;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  /** the output object (wire shape) once completed; null once a sync_mode result was delivered and dropped */
  result?: unknown;
  resultPurged: boolean;
  error?: JobError;
  webhookState?: 'pending' | 'delivered' | 'failed';
  webhookAttempts: number;
}

export type CancelOutcome = 'CANCELLATION_REQUESTED' | 'ALREADY_COMPLETED' | 'NOT_FOUND';

export type JobEvent =
  | { type: 'added'; id: string }
  | { type: 'state'; id: string; state: JobState }
  | { type: 'log'; id: string; log: JobLog }
  | { type: 'cancel-requested'; id: string };

export interface JobQueue {
  add(job: NewJob): Promise<Job>;
  get(id: string): Promise<Job | undefined>;
  inputImage(id: string): Promise<Uint8Array | undefined>;
  /** jobs still queued ahead of this one (0 = next to start); undefined when it is not queued */
  queuePosition(id: string): Promise<number | undefined>;
  logs(id: string): Promise<JobLog[]>;
  appendLog(id: string, log: JobLog): Promise<void>;
  /** the oldest queued job, moved to running with attempts + 1 */
  claim(): Promise<Job | undefined>;
  complete(id: string, result: unknown): Promise<void>;
  /** end a job with an error: state 'failed' or 'cancelled' */
  fail(id: string, error: JobError, state?: 'failed' | 'cancelled'): Promise<void>;
  /** queued → cancelled at once; running → flagged (the runner stops at the next step) */
  cancel(id: string): Promise<CancelOutcome>;
  /** running → queued again without counting the attempt (graceful shutdown) */
  requeue(id: string): Promise<void>;
  /**
   * After a crash: jobs left running are re-queued while attempts < maxAttempts, else failed with WORKER_CRASHED;
   * sync jobs left queued or running are failed (their connection is gone).
   */
  recover(maxAttempts: number): Promise<{ requeued: string[]; failed: string[] }>;
  /** drop a delivered sync_mode result */
  purgeResult(id: string): Promise<void>;
  setWebhookState(id: string, state: 'pending' | 'delivered' | 'failed', attempts: number): Promise<void>;
  /** finished jobs whose webhook is still to be delivered */
  pendingWebhooks(): Promise<Job[]>;
  counts(): Promise<Record<JobState, number>>;
  subscribe(listener: (event: JobEvent) => void): () => void;
  close(): Promise<void>;
}

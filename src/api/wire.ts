/**
 * Wire shapes of the queue protocol: status objects (polled and streamed), result answers, webhook bodies.
 */
import type { FastifyRequest } from 'fastify';
import { AtelierError, ERROR_CATALOG, type ErrorCode } from '../contract/errors.ts';
import type { Job, JobLog, JobQueue } from '../jobs/queue.ts';
import { errorBody, type ErrorBody } from './errors.ts';

export type WireStatus = 'IN_QUEUE' | 'IN_PROGRESS' | 'COMPLETED';

export interface RequestLog {
  message: string;
  level: JobLog['level'];
  source: 'USER';
  timestamp: string;
}

/** scheme://host of absolute URLs in answers to `request`: the configured public URL, else the request's own host. */
export function requestBase(request: FastifyRequest, publicUrl: string | undefined): string {
  return publicUrl ?? `${request.protocol}://${request.host}`;
}

export function urlsOf(job: Pick<Job, 'id' | 'app'>, base: string): { response_url: string; status_url: string; cancel_url: string } {
  const url = `${base}/queue/${job.app}/requests/${job.id}`;
  return { response_url: url, status_url: `${url}/status`, cancel_url: `${url}/cancel` };
}

/** Signs an output path (`/outputs/...`) into a URL path with its query (servers with keys). */
export interface OutputSigner {
  sign(urlPath: string): string;
}

/** Output image URLs are stored relative (`/outputs/...`), made absolute (and signed, with keys); data URIs stay as they are. */
export function absolutize(result: unknown, base: string, signer?: OutputSigner): unknown {
  const r = result as { images?: { url: string }[] } | null;
  if (!r || !Array.isArray(r.images)) return result;
  const full = (p: string) => `${base}${signer ? signer.sign(p) : p}`;
  return { ...r, images: r.images.map((i) => (i.url.startsWith('/') ? { ...i, url: full(i.url) } : i)) };
}

export function wireStatus(job: Job): WireStatus {
  if (job.state === 'queued') return 'IN_QUEUE';
  if (job.state === 'running') return 'IN_PROGRESS';
  return 'COMPLETED';
}

/** The status object of fal's queue protocol (with `error` / `error_type` when the job failed). */
export async function statusBody(queue: JobQueue, job: Job, withLogs: boolean, base: string): Promise<Record<string, unknown>> {
  const status = wireStatus(job);
  const body: Record<string, unknown> = { status, request_id: job.id, ...urlsOf(job, base) };
  if (status === 'IN_QUEUE') body.queue_position = (await queue.queuePosition(job.id)) ?? 0;
  if (withLogs) body.logs = (await queue.logs(job.id)).map(toRequestLog);
  else if (status !== 'IN_QUEUE') body.logs = null;
  if (status === 'COMPLETED') {
    const inference = (job.result as { timings?: { inference?: number } } | undefined)?.timings?.inference;
    body.metrics = { inference_time: inference ?? null };
    if (job.error) {
      body.error = job.error.message;
      body.error_type = job.error.code;
    }
  }
  return body;
}

export function toRequestLog(l: JobLog): RequestLog {
  return { message: l.message, level: l.level, source: 'USER', timestamp: l.timestamp };
}

/** The error a finished-but-failed job answers with. */
export function jobError(job: Job): AtelierError {
  const e = job.error ?? { code: 'INTERNAL', message: 'the job ended without a result' };
  const code = (e.code in ERROR_CATALOG ? e.code : 'INTERNAL') as ErrorCode;
  return new AtelierError(code, e.message, { ...(e.field ? { field: e.field } : {}) });
}

/** The result answer: 200 + output, or the job's error with its status. */
export function resultAnswer(job: Job, base: string, signer?: OutputSigner): { status: number; body: unknown } {
  if (job.state === 'queued' || job.state === 'running') {
    const err = new AtelierError('RESULT_NOT_READY', `request ${job.id} is ${job.state === 'queued' ? 'still in the queue' : 'still running'}; poll its status_url`);
    return { status: err.status, body: errorBody(err) };
  }
  if (job.state === 'completed') {
    if (job.resultPurged) {
      const err = new AtelierError('RESULT_GONE', `the sync_mode result of request ${job.id} was already delivered and is not kept on the server`);
      return { status: err.status, body: errorBody(err) };
    }
    return { status: 200, body: absolutize(job.result, base, signer) };
  }
  const err = jobError(job);
  return { status: err.status, body: errorBody(err) };
}

/** Webhook body parts for a finished job (fal's shape: status OK | ERROR, payload, error). */
export function webhookPayload(job: Job, signer?: OutputSigner): { status: 'OK' | 'ERROR'; payload: unknown; error: string | null } {
  if (job.state === 'completed') return { status: 'OK', payload: absolutize(job.result ?? null, job.baseUrl, signer), error: null };
  const body: ErrorBody = errorBody(jobError(job));
  return { status: 'ERROR', payload: body, error: body.error.message };
}

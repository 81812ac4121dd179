/**
 * Webhooks: on completion a job's result is POSTed to the URL given at submit (`?webhook=` or fal's `?fal_webhook=`),
 * signed per the Standard Webhooks scheme (https://www.standardwebhooks.com/):
 *   webhook-id: <request id>   webhook-timestamp: <unix seconds>
 *   webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<raw body>")>
 * where key = base64-decoded text after "whsec_" when the secret has that prefix, else the secret's UTF-8 bytes.
 * Delivery is retried with exponential backoff on network errors and non-2xx answers; the state is stored with
 * the job, so deliveries pending at a crash resume after restart. Destinations pass the same address guard as
 * image fetches (public addresses, plus the operator's allow-list), pinned to the vetted address.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import dns from 'node:dns';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { AtelierError } from '../contract/errors.ts';
import { classifyAddress, isAllowed, type AllowList } from '../images/address-guard.ts';
import type { Job, JobQueue } from '../jobs/queue.ts';
import { TERMINAL_STATES } from '../jobs/queue.ts';
import type { Metrics } from './metrics.ts';

const MAX_DELAY_MS = 5 * 60_000;
const TOLERANCE_S = 5 * 60;

/** The secret from config, or the one generated once into `<dataDir>/webhook-secret` (mode 0600). */
export function loadOrCreateSecret(dataDir: string, configured?: string): string {
  if (configured) return configured;
  const file = path.join(dataDir, 'webhook-secret');
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    fs.mkdirSync(dataDir, { recursive: true });
    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    fs.writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
    return secret;
  }
}

function keyBytes(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8');
}

/** `v1,<base64 signature>` for one message. */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const mac = createHmac('sha256', keyBytes(secret)).update(`${id}.${timestamp}.${body}`).digest('base64');
  return `v1,${mac}`;
}

/**
 * Check a received webhook (for receivers and tests): throws UNAUTHORIZED unless one of the space-separated
 * signatures matches and the timestamp is within five minutes of `nowSeconds`.
 */
export function verifyWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  rawBody: string,
  nowSeconds = Math.floor(Date.now() / 1000),
): void {
  const h = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const id = h('webhook-id');
  const ts = Number(h('webhook-timestamp'));
  const sigs = (h('webhook-signature') ?? '').split(' ');
  if (!id || !Number.isInteger(ts)) throw new AtelierError('UNAUTHORIZED', 'webhook-id or webhook-timestamp header missing');
  if (Math.abs(nowSeconds - ts) > TOLERANCE_S) throw new AtelierError('UNAUTHORIZED', `webhook timestamp ${ts} is too old or in the future`);
  const expected = Buffer.from(signWebhook(secret, id, ts, rawBody));
  const ok = sigs.some((s) => {
    const b = Buffer.from(s);
    return b.length === expected.length && timingSafeEqual(b, expected);
  });
  if (!ok) throw new AtelierError('UNAUTHORIZED', 'webhook signature does not match');
}

/** Submit-time check of a webhook URL: http(s), no credentials, every address public or allow-listed. */
export async function vetWebhookUrl(text: string, allow: AllowList): Promise<URL> {
  let url: URL;
  try {
    url = new URL(text);
  } catch (cause) {
    throw new AtelierError('URL_REFUSED', `webhook: ${JSON.stringify(text)} is not a valid URL`, { field: 'webhook', cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new AtelierError('URL_REFUSED', `webhook: scheme "${url.protocol}" is not accepted; use http: or https:`, { field: 'webhook' });
  }
  if (url.username || url.password) throw new AtelierError('URL_REFUSED', 'webhook: credentials in the URL are not accepted', { field: 'webhook' });
  await resolveVetted(url, allow);
  return url;
}

async function resolveVetted(url: URL, allow: AllowList): Promise<{ address: string; family: 4 | 6 }> {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  let found: { address: string; family: number }[];
  if (net.isIP(host)) found = [{ address: host, family: net.isIP(host) }];
  else {
    try {
      found = await dns.promises.lookup(host, { all: true, verbatim: true });
    } catch (cause) {
      throw new AtelierError('URL_REFUSED', `webhook: host "${host}" could not be resolved`, { field: 'webhook', cause });
    }
  }
  for (const a of found) {
    const cls = classifyAddress(a.address);
    if (cls !== 'public' && !isAllowed(a.address, allow)) {
      throw new AtelierError('URL_REFUSED', `webhook: ${host} is a ${cls} address (${a.address}); add it to ATELIER_ALLOW_NETWORKS to allow it`, {
        field: 'webhook',
      });
    }
  }
  if (found.length === 0) throw new AtelierError('URL_REFUSED', `webhook: host "${host}" has no addresses`, { field: 'webhook' });
  return { address: found[0]!.address, family: found[0]!.family as 4 | 6 };
}

export interface WebhookOptions {
  queue: JobQueue;
  secret: string;
  allow: AllowList;
  attempts: number;
  retryBaseMs: number;
  timeoutMs?: number;
  log: FastifyBaseLogger;
  metrics: Metrics;
  /** builds the wire body of a finished job */
  payloadOf: (job: Job) => { status: 'OK' | 'ERROR'; payload: unknown; error: string | null };
}

export class WebhookSender {
  private readonly timers = new Set<NodeJS.Timeout>();
  private unsubscribe?: () => void;
  private stopped = false;
  private readonly inFlight = new Set<string>();

  constructor(private readonly o: WebhookOptions) {}

  async start(): Promise<void> {
    this.unsubscribe = this.o.queue.subscribe((e) => {
      if (e.type === 'state' && TERMINAL_STATES.includes(e.state)) this.safeKick(e.id);
    });
    for (const job of await this.o.queue.pendingWebhooks()) this.safeKick(job.id);
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private safeKick(id: string): void {
    this.kick(id).catch((e: unknown) => this.o.log.error({ err: e, jobId: id }, 'webhook scheduling failed'));
  }

  private async kick(id: string): Promise<void> {
    if (this.inFlight.has(id)) return;
    const job = await this.o.queue.get(id);
    if (!job?.webhookUrl || job.webhookState !== 'pending') return;
    this.inFlight.add(id);
    const p = this.o.payloadOf(job);
    const body = JSON.stringify({ request_id: job.id, gateway_request_id: job.id, status: p.status, payload: p.payload, error: p.error });
    this.attempt(job, body, job.webhookAttempts + 1);
  }

  private attempt(job: Job, body: string, n: number): void {
    if (this.stopped) return;
    const log = this.o.log.child({ jobId: job.id, webhook: job.webhookUrl });
    this.post(job.webhookUrl!, job.id, body)
      .then(async () => {
        this.o.metrics.inc('atelier_webhook_deliveries_total', { outcome: 'delivered' });
        await this.o.queue.setWebhookState(job.id, 'delivered', n);
        this.inFlight.delete(job.id);
        log.info({ attempt: n }, 'webhook delivered');
      })
      .catch(async (e: unknown) => {
        const last = n >= this.o.attempts;
        this.o.metrics.inc('atelier_webhook_deliveries_total', { outcome: last ? 'gave_up' : 'retry' });
        await this.o.queue.setWebhookState(job.id, last ? 'failed' : 'pending', n).catch(() => undefined);
        if (last || this.stopped) {
          this.inFlight.delete(job.id);
          if (!last) return; // shutting down: still 'pending', resumed at the next start
          log.warn({ attempt: n, err: (e as Error).message }, `webhook failed ${n} times; giving up`);
          return;
        }
        const delay = Math.min(MAX_DELAY_MS, this.o.retryBaseMs * 2 ** (n - 1));
        log.info({ attempt: n, retryInMs: delay, err: (e as Error).message }, 'webhook delivery failed; will retry');
        const t = setTimeout(() => {
          this.timers.delete(t);
          this.attempt(job, body, n + 1);
        }, delay);
        this.timers.add(t);
      });
  }

  /** One signed POST to the vetted, pinned address; resolves on 2xx. */
  private async post(target: string, id: string, body: string): Promise<void> {
    const url = new URL(target);
    const to = await resolveVetted(url, this.o.allow);
    const ts = Math.floor(Date.now() / 1000);
    const secure = url.protocol === 'https:';
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    await new Promise<void>((resolve, reject) => {
      const req = (secure ? https : http).request({
        host: to.address,
        family: to.family,
        port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        agent: false,
        timeout: this.o.timeoutMs ?? 10_000,
        headers: {
          host: url.host,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'user-agent': 'atelier-webhooks/0.1',
          'webhook-id': id,
          'webhook-timestamp': String(ts),
          'webhook-signature': signWebhook(this.o.secret, id, ts, body),
        },
        ...(secure && !net.isIP(host) ? { servername: host } : {}),
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.o.timeoutMs ?? 10_000} ms`)));
      req.on('error', reject);
      req.on('response', (res) => {
        res.resume();
        const s = res.statusCode ?? 0;
        if (s >= 200 && s < 300) resolve();
        else reject(new Error(`receiver answered HTTP ${s}`));
      });
      req.end(body);
    });
  }
}

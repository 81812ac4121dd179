/**
 * Optional API keys (`Authorization: Key <key>` or `Bearer <key>`) and a per-key token-bucket rate limit.
 * Keys are compared by SHA-256 digest in constant time and never logged; logs name a key by a short fingerprint,
 * jobs by an owner hash (ownerOf). Admin keys are keys too, and may read every job.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { AtelierError } from '../contract/errors.ts';
import type { RateLimit } from './config.ts';

export class RateLimited extends AtelierError {
  readonly retryAfterSeconds: number;
  constructor(limit: RateLimit, retryAfterSeconds: number, what = 'rate limit') {
    super('RATE_LIMITED', `${what} of ${limit.source} exceeded; retry after ${retryAfterSeconds} s`);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The fingerprint that stands for a key in logs and metrics. */
export function keyFingerprint(key: string): string {
  return `key-${createHash('sha256').update(key).digest('hex').slice(0, 8)}`;
}

/**
 * What a job stores about the key that submitted it: a SHA-256 hash of the key (never the key), the full digest so
 * that two keys never share their jobs.
 */
export function ownerOf(key: string): string {
  return createHash('sha256').update(`atelier-job-owner\0${key}`, 'utf8').digest('hex');
}

/** An authenticated caller. */
export interface Identity {
  /** short, for logs and rate-limit buckets */
  fingerprint: string;
  /** stored with the jobs this caller submits */
  owner: string;
  /** may read every job */
  admin: boolean;
}

export class KeyAuth {
  private readonly digests: Buffer[];
  private readonly admins: boolean[];
  readonly enabled: boolean;

  constructor(keys: readonly string[], adminKeys: readonly string[] = []) {
    this.digests = [...keys, ...adminKeys].map(digest);
    this.admins = [...keys.map(() => false), ...adminKeys.map(() => true)];
    this.enabled = this.digests.length > 0;
  }

  /** The caller's key fingerprint, or undefined when keys are off. Throws UNAUTHORIZED. */
  authenticate(authorization: string | undefined): string | undefined {
    return this.identify(authorization)?.fingerprint;
  }

  /** The caller's identity, or undefined when keys are off. Throws UNAUTHORIZED. */
  identify(authorization: string | undefined): Identity | undefined {
    if (!this.enabled) return undefined;
    if (!authorization) throw new AtelierError('UNAUTHORIZED', 'missing API key: send "Authorization: Key <key>" or "Authorization: Bearer <key>"');
    const m = /^(Key|Bearer)\s+(\S.*)$/i.exec(authorization.trim());
    if (!m) throw new AtelierError('UNAUTHORIZED', 'malformed Authorization header: expected "Key <key>" or "Bearer <key>"');
    const key = m[2]!.trim();
    const d = digest(key);
    // Every digest is compared (no early exit), so the time taken does not say which key matched.
    let ok = false;
    let admin = false;
    for (const [i, k] of this.digests.entries()) {
      const match = timingSafeEqual(k, d);
      ok = match || ok;
      admin = (match && this.admins[i]!) || admin;
    }
    if (!ok) throw new AtelierError('UNAUTHORIZED', 'invalid API key');
    return { fingerprint: keyFingerprint(key), owner: ownerOf(key), admin };
  }
}

/** Token bucket per client (https://en.wikipedia.org/wiki/Token_bucket): `burst` tokens, refilled at `perSecond`. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly limit: RateLimit,
    private readonly now: () => number = () => performance.now() / 1000,
  ) {}

  /** Take one token for `client` or throw RATE_LIMITED with the seconds until one is available. */
  take(client: string): void {
    const t = this.now();
    const b = this.buckets.get(client) ?? { tokens: this.limit.burst, at: t };
    b.tokens = Math.min(this.limit.burst, b.tokens + (t - b.at) * this.limit.perSecond);
    b.at = t;
    if (b.tokens < 1) {
      this.buckets.set(client, b);
      throw new RateLimited(this.limit, Math.max(1, Math.ceil((1 - b.tokens) / this.limit.perSecond)));
    }
    b.tokens -= 1;
    this.buckets.set(client, b);
    if (this.buckets.size > 10_000) this.prune(t);
  }

  /** Forget buckets that are full again (they behave exactly like new ones). */
  private prune(t: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + (t - b.at) * this.limit.perSecond >= this.limit.burst) this.buckets.delete(k);
    }
  }
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

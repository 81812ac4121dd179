/**
 * Optional API keys (`Authorization: Key <key>` or `Bearer <key>`) and a per-key token-bucket rate limit.
 * Keys are compared by SHA-256 digest in constant time and never logged; logs name a key by a short fingerprint.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { AtelierError } from '../contract/errors.ts';
import type { RateLimit } from './config.ts';

export class RateLimited extends AtelierError {
  readonly retryAfterSeconds: number;
  constructor(limit: RateLimit, retryAfterSeconds: number) {
    super('RATE_LIMITED', `rate limit of ${limit.source} exceeded; retry after ${retryAfterSeconds} s`);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The fingerprint that stands for a key in logs and metrics. */
export function keyFingerprint(key: string): string {
  return `key-${createHash('sha256').update(key).digest('hex').slice(0, 8)}`;
}

export class KeyAuth {
  private readonly digests: Buffer[];
  readonly enabled: boolean;

  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
    this.enabled = keys.length > 0;
  }

  /** The caller's identity: a key fingerprint, or undefined when keys are off. Throws UNAUTHORIZED. */
  authenticate(authorization: string | undefined): string | undefined {
    if (!this.enabled) return undefined;
    if (!authorization) throw new AtelierError('UNAUTHORIZED', 'missing API key: send "Authorization: Key <key>" or "Authorization: Bearer <key>"');
    const m = /^(Key|Bearer)\s+(\S.*)$/i.exec(authorization.trim());
    if (!m) throw new AtelierError('UNAUTHORIZED', 'malformed Authorization header: expected "Key <key>" or "Bearer <key>"');
    const key = m[2]!.trim();
    const d = digest(key);
    let ok = false;
    for (const k of this.digests) ok = timingSafeEqual(k, d) || ok;
    if (!ok) throw new AtelierError('UNAUTHORIZED', 'invalid API key');
    return keyFingerprint(key);
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

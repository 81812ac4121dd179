/**
 * Brute-force guard: failed API-key checks are counted per client address; after `limit.burst` failures within
 * one window (`burst / perSecond` seconds, e.g. 10 in 60 s for "10/min") the address is blocked for one window.
 * While blocked, every request from it that would check a key is answered 429 with Retry-After — a right key too,
 * so a guess made during the block cannot be confirmed. Successful checks are not counted and do not clear the
 * count (a client holding one valid key gains nothing for guessing another, e.g. an admin key).
 */
import type { RateLimit } from './config.ts';
import { RateLimited } from './auth.ts';

interface Entry {
  /** start of the counting window, seconds */
  since: number;
  failures: number;
  /** blocked until this time, seconds (0 = not blocked) */
  until: number;
}

export class AuthFailureLimiter {
  private readonly entries = new Map<string, Entry>();
  private readonly windowS: number;

  constructor(
    readonly limit: RateLimit,
    private readonly now: () => number = () => performance.now() / 1000,
  ) {
    this.windowS = limit.burst / limit.perSecond;
  }

  /** Throws RATE_LIMITED while `address` is blocked. */
  check(address: string): void {
    const e = this.entries.get(address);
    if (!e) return;
    const t = this.now();
    if (e.until > t) throw this.blocked(e.until - t);
    if (e.until !== 0 || t - e.since >= this.windowS) this.entries.delete(address); // block or window over
  }

  /** Count one failed key check from `address`; the failure that reaches the limit starts the block. */
  fail(address: string): void {
    const t = this.now();
    let e = this.entries.get(address);
    if (!e || e.until !== 0 || t - e.since >= this.windowS) e = { since: t, failures: 0, until: 0 };
    e.failures += 1;
    if (e.failures >= this.limit.burst) e.until = t + this.windowS;
    this.entries.set(address, e);
    if (this.entries.size > 10_000) this.prune(t);
  }

  private blocked(remainingS: number): RateLimited {
    return new RateLimited(this.limit, Math.max(1, Math.ceil(remainingS)), 'limit on failed API key checks from this address');
  }

  /** Forget addresses whose window and block are over (they behave exactly like new ones). */
  private prune(t: number): void {
    for (const [k, e] of this.entries) {
      if (e.until <= t && t - e.since >= this.windowS) this.entries.delete(k);
    }
  }
}

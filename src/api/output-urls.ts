/**
 * Signed output URLs: with API keys configured, `/outputs/<id>/<n>.<ext>` answers a valid key, or a URL signed by
 * this server: `?expires=<unix seconds>&sig=<hex HMAC-SHA256(secret, "<path>\n<expires>")>`. Result images carry
 * such URLs, so a client (or a browser `<img>`) can fetch them without a header until they expire.
 * The secret is the server's own, generated once into `<dataDir>/output-url-secret` (mode 0600); it is not the
 * webhook secret, which webhook receivers hold.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export type SignatureCheck = 'ok' | 'missing' | 'expired' | 'invalid';

export class OutputUrlSigner {
  private readonly key: Buffer;

  /** `ttlSeconds`: how long a signed URL stays valid (rounded up to the next full hour when it is an hour or more). */
  constructor(
    secret: Buffer,
    readonly ttlSeconds: number,
    private readonly now: () => number = () => Date.now() / 1000,
  ) {
    this.key = Buffer.from(secret);
  }

  /** `path` (e.g. `/outputs/<id>/0.jpg`) with its `expires` and `sig` query parameters. */
  sign(urlPath: string): string {
    const end = this.now() + this.ttlSeconds;
    // Whole hours keep a result's URLs identical between fetches within the hour, so browsers can cache them.
    const step = this.ttlSeconds >= 3600 ? 3600 : 1;
    const expires = Math.ceil(end / step) * step;
    return `${urlPath}?expires=${expires}&sig=${this.mac(urlPath, expires).toString('hex')}`;
  }

  /** Check the `expires` and `sig` query parameters of a request for `urlPath`; constant-time comparison. */
  check(urlPath: string, query: Readonly<Record<string, unknown>>): SignatureCheck {
    const { expires, sig } = query;
    if (expires === undefined && sig === undefined) return 'missing';
    if (typeof expires !== 'string' || typeof sig !== 'string' || !/^\d{1,12}$/.test(expires) || !/^[0-9a-f]{64}$/.test(sig)) return 'invalid';
    const given = Buffer.from(sig, 'hex');
    if (!timingSafeEqual(given, this.mac(urlPath, Number(expires)))) return 'invalid';
    return Number(expires) < this.now() ? 'expired' : 'ok';
  }

  /** Seconds until a checked URL expires (for Cache-Control). */
  remaining(query: Readonly<Record<string, unknown>>): number {
    return Math.max(0, Math.floor(Number(query.expires) - this.now()));
  }

  private mac(urlPath: string, expires: number): Buffer {
    return createHmac('sha256', this.key).update(`${urlPath}\n${expires}`).digest();
  }
}

/** The signing secret kept in `<dataDir>/output-url-secret`, generated on first use. */
export function loadOrCreateOutputSecret(dataDir: string): Buffer {
  const file = path.join(dataDir, 'output-url-secret');
  const read = () => {
    const secret = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
    if (secret.length < 16) throw new Error(`${file} holds no usable secret (under 16 bytes); delete it to have a new one generated`);
    return secret;
  };
  try {
    return read();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  fs.mkdirSync(dataDir, { recursive: true });
  try {
    fs.writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // another process wrote it first: use theirs
  }
  return read();
}

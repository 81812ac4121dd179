/**
 * Fetch user-supplied URLs (input images, LoRA/embedding files) safely.
 *
 * - `data:` URIs (base64 or percent-encoded) are decoded locally.
 * - `http(s)://` only; no credentials in the URL. The host name is resolved here (all addresses) and refused when any
 *   address is not 'public' (see address-guard.ts) unless the operator allow-list covers it. The connection then goes
 *   to that vetted address (connect by IP, Host header and TLS servername set to the name), so a second DNS answer
 *   cannot swap it (DNS rebinding).
 * - Redirects are followed by hand, each hop re-vetted, at most `maxRedirects`.
 * - Bodies are limited while streaming (`maxBytes`), a Content-Length over the limit is refused up front, and one
 *   deadline (`timeoutMs`) covers DNS, connect, redirects and the body.
 * Failures are AtelierErrors naming `field`: URL_REFUSED, IMAGE_FETCH_FAILED, PAYLOAD_TOO_LARGE.
 */
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { AtelierError } from '../contract/errors.ts';
import { classifyAddress, isAllowed, type AllowList } from './address-guard.ts';

export interface FetchOptions {
  maxBytes: number;
  timeoutMs: number;
  maxRedirects: number;
  allow: AllowList;
  /** wire field the URL came from, e.g. `image_url`, `loras[0].path` */
  field: string;
  /** optional caller cancellation (e.g. the job was cancelled) */
  signal?: AbortSignal;
}

export interface FetchResult {
  bytes: Buffer;
  contentType?: string;
  finalUrl: string;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const USER_AGENT = 'atelier/0.1 (+image fetch)';

/** Quote a URL for an error message: JSON-quoted, cut to 100 characters (data URIs to 40). */
export function quoteUrl(url: string): string {
  const limit = url.slice(0, 5).toLowerCase() === 'data:' ? 40 : 100;
  return JSON.stringify(url.length > limit ? `${url.slice(0, limit)}…` : url);
}

export async function fetchBytes(url: string, opts: FetchOptions): Promise<FetchResult> {
  if (url.slice(0, 5).toLowerCase() === 'data:') return decodeDataUri(url, opts);

  const deadline = new AbortController();
  const timer = setTimeout(
    () => deadline.abort(fetchFailed(opts, url, `timed out after ${opts.timeoutMs} ms`)),
    opts.timeoutMs,
  );
  const onCallerAbort = (): void => deadline.abort(new AtelierError('CANCELLED', `fetch of ${quoteUrl(url)} cancelled`));
  opts.signal?.addEventListener('abort', onCallerAbort, { once: true });
  if (opts.signal?.aborted) onCallerAbort();
  try {
    return await followRedirects(url, opts, deadline.signal);
  } catch (e) {
    // Anything thrown after the deadline fired is reported as the timeout (or cancellation) itself.
    if (deadline.signal.aborted && deadline.signal.reason instanceof AtelierError) throw deadline.signal.reason;
    throw e;
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onCallerAbort);
  }
}

async function followRedirects(startUrl: string, opts: FetchOptions, signal: AbortSignal): Promise<FetchResult> {
  let current = startUrl;
  for (let hop = 0; ; hop++) {
    const via = hop > 0 ? ` (redirected from ${quoteUrl(startUrl)})` : '';
    const target = checkUrl(current, opts, via);
    const addresses = await vetHost(target, current, via, opts, signal);
    const result = await requestFirstReachable(target, addresses, opts, signal, current);
    if ('redirect' in result) {
      if (hop >= opts.maxRedirects) {
        throw fetchFailed(opts, startUrl, `more than ${opts.maxRedirects} redirects`);
      }
      current = result.redirect;
      continue;
    }
    return { ...result, finalUrl: current };
  }
}

/** Parse and check scheme / credentials; returns the parsed URL. */
function checkUrl(text: string, opts: FetchOptions, via: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch (cause) {
    throw refused(opts, `${quoteUrl(text)} is not a valid URL${via}`, cause);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    const accepted = via ? 'redirects are followed to http: and https: only' : 'only http:, https: and data: are accepted';
    throw refused(opts, `${quoteUrl(text)} has scheme "${url.protocol}"${via}; ${accepted}`);
  }
  if (url.username !== '' || url.password !== '') {
    throw refused(opts, `${quoteUrl(redact(url))} carries credentials${via}; they are not accepted in URLs`);
  }
  return url;
}

interface Vetted {
  address: string;
  family: 4 | 6;
}

/** Resolve the host (or take the IP literal) and refuse unless every address is public or allow-listed. */
async function vetHost(
  url: URL,
  text: string,
  via: string,
  opts: FetchOptions,
  signal: AbortSignal,
): Promise<Vetted[]> {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  let addresses: Vetted[];
  if (net.isIP(host) !== 0) {
    addresses = [{ address: host, family: net.isIP(host) as 4 | 6 }];
  } else {
    try {
      const found = await abortable(dns.promises.lookup(host, { all: true, verbatim: true }), signal);
      addresses = found.map((a) => ({ address: a.address, family: a.family as 4 | 6 }));
    } catch (cause) {
      if (signal.aborted) throw cause;
      throw fetchFailed(opts, text, `host "${host}" could not be resolved`, cause);
    }
    if (addresses.length === 0) throw fetchFailed(opts, text, `host "${host}" has no addresses`);
  }
  for (const a of addresses) {
    const cls = classifyAddress(a.address);
    if (cls !== 'public' && !isAllowed(a.address, opts.allow)) {
      const name = host === a.address ? 'host' : `host "${host}" resolves to`;
      throw refused(
        opts,
        `${quoteUrl(text)}${via}: ${name} ${a.address} (${cls}); this server does not fetch from ${cls} addresses`,
      );
    }
  }
  return addresses;
}

type HopResult = { redirect: string } | { bytes: Buffer; contentType?: string };

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'EAFNOSUPPORT']);

/** Try the vetted addresses in order; move on only when a connection could not be made at all. */
async function requestFirstReachable(
  url: URL,
  addresses: Vetted[],
  opts: FetchOptions,
  signal: AbortSignal,
  text: string,
): Promise<HopResult> {
  let lastError: unknown;
  for (const address of addresses) {
    try {
      return await requestOnce(url, address, opts, signal, text);
    } catch (e) {
      const code = (e as { code?: string } | null)?.code;
      if (e instanceof AtelierError || signal.aborted || !code || !CONNECT_ERRORS.has(code)) {
        throw e instanceof AtelierError || signal.aborted ? e : fetchFailed(opts, text, describe(e), e);
      }
      lastError = e;
    }
  }
  throw fetchFailed(opts, text, describe(lastError), lastError);
}

function requestOnce(url: URL, to: Vetted, opts: FetchOptions, signal: AbortSignal, text: string): Promise<HopResult> {
  const secure = url.protocol === 'https:';
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const request = secure ? https.request : http.request;
  return new Promise<HopResult>((resolve, reject) => {
    const req = request({
      host: to.address, // pinned: the vetted address, never a second lookup
      family: to.family,
      port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
      path: `${url.pathname}${url.search}`,
      method: 'GET',
      headers: { host: url.host, 'user-agent': USER_AGENT, accept: '*/*', 'accept-encoding': 'identity' },
      agent: false,
      signal,
      ...(secure && net.isIP(host) === 0 ? { servername: host } : {}),
    });
    req.on('error', reject);
    req.on('response', (res) => {
      res.on('error', reject);
      const status = res.statusCode ?? 0;
      if (REDIRECT_STATUSES.has(status)) {
        res.resume();
        const location = res.headers.location;
        if (!location) return reject(fetchFailed(opts, text, `HTTP ${status} redirect without a Location header`));
        let next: string;
        try {
          next = new URL(location, url).href;
        } catch (cause) {
          return reject(refused(opts, `${quoteUrl(text)} redirects to an invalid URL ${quoteUrl(location)}`, cause));
        }
        req.destroy();
        return resolve({ redirect: next });
      }
      if (status < 200 || status > 299) {
        res.resume();
        req.destroy();
        return reject(fetchFailed(opts, text, `the server answered HTTP ${status}`));
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > opts.maxBytes) {
        req.destroy();
        return reject(tooLarge(opts, text, `declares ${declared} bytes`));
      }
      const chunks: Buffer[] = [];
      let total = 0;
      res.on('data', (chunk: Buffer) => {
        total += chunk.length;
        if (total > opts.maxBytes) {
          req.destroy();
          reject(tooLarge(opts, text, `sent more than ${opts.maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        if (!res.complete) return reject(fetchFailed(opts, text, 'the connection closed before the body was complete'));
        const contentType = res.headers['content-type'];
        resolve({ bytes: Buffer.concat(chunks, total), ...(contentType ? { contentType } : {}) });
      });
      res.on('close', () => {
        if (!res.complete) reject(fetchFailed(opts, text, 'the connection closed before the body was complete'));
      });
    });
    req.end();
  });
}

/** data:[<mediatype>][;base64],<data> (RFC 2397 / WHATWG fetch "data: URL processor", simplified). */
function decodeDataUri(url: string, opts: FetchOptions): FetchResult {
  const comma = url.indexOf(',');
  if (comma < 0) throw fetchFailed(opts, url, 'malformed data URI: no "," before the data');
  const meta = url.slice(5, comma).trim();
  const payload = url.slice(comma + 1);
  const params = meta.split(';').map((p) => p.trim());
  const isBase64 = params.length > 1 && params[params.length - 1]!.toLowerCase() === 'base64';
  const typeParts = isBase64 ? params.slice(0, -1) : params;
  const contentType = typeParts[0] ? typeParts.join(';') : undefined;

  let bytes: Buffer;
  if (isBase64) {
    const clean = percentDecode(payload, opts, url).toString('latin1').replace(/[\t\n\f\r ]/g, '');
    if (!/^[A-Za-z0-9+/\-_]*={0,2}$/.test(clean) || clean.length % 4 === 1) {
      throw fetchFailed(opts, url, 'malformed data URI: invalid base64');
    }
    const estimated = Math.floor((clean.length * 3) / 4);
    if (estimated - 2 > opts.maxBytes) throw tooLarge(opts, url, `holds about ${estimated} bytes`);
    bytes = Buffer.from(clean, 'base64');
  } else {
    bytes = percentDecode(payload, opts, url);
  }
  if (bytes.length > opts.maxBytes) throw tooLarge(opts, url, `holds ${bytes.length} bytes`);
  return { bytes, ...(contentType ? { contentType } : {}), finalUrl: url };
}

/** Percent-decode into raw bytes (decodeURIComponent would insist on UTF-8). */
function percentDecode(text: string, opts: FetchOptions, url: string): Buffer {
  if (!text.includes('%')) return Buffer.from(text, 'latin1');
  const out = Buffer.alloc(text.length);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x25) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw fetchFailed(opts, url, 'malformed data URI: bad percent escape');
      out[n++] = parseInt(hex, 16);
      i += 2;
    } else if (c > 0xff) {
      throw fetchFailed(opts, url, 'malformed data URI: non-ASCII character');
    } else {
      out[n++] = c;
    }
  }
  return out.subarray(0, n);
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function redact(url: URL): string {
  const copy = new URL(url.href);
  copy.username = copy.username ? '***' : '';
  copy.password = copy.password ? '***' : '';
  return copy.href;
}

function describe(e: unknown): string {
  const err = e as { code?: string; message?: string } | null;
  return err?.code ? `connection failed (${err.code})` : `connection failed (${err?.message ?? String(e)})`;
}

function refused(opts: FetchOptions, detail: string, cause?: unknown): AtelierError {
  return new AtelierError('URL_REFUSED', `${opts.field}: ${detail}`, { field: opts.field, cause });
}

function fetchFailed(opts: FetchOptions, url: string, detail: string, cause?: unknown): AtelierError {
  return new AtelierError('IMAGE_FETCH_FAILED', `${opts.field}: could not fetch ${quoteUrl(url)}: ${detail}`, {
    field: opts.field,
    cause,
  });
}

function tooLarge(opts: FetchOptions, url: string, detail: string): AtelierError {
  return new AtelierError(
    'PAYLOAD_TOO_LARGE',
    `${opts.field}: ${quoteUrl(url)} ${detail}, over the limit of ${opts.maxBytes} bytes`,
    { field: opts.field },
  );
}

/**
 * Server configuration from command-line flags and environment variables (flags win), through the one option
 * parser (contract/options.ts): the server's own options, and the engine settings (contract/settings.ts).
 * Every setting has an embedded default, so `atelier serve` runs with nothing configured.
 */
import path from 'node:path';
import { optionError, optionsHelp, parseOptions, type OptionSpec } from '../contract/options.ts';
import { ENGINE_OPTIONS, engineSettingsFrom, type EngineSettings } from '../contract/settings.ts';

export interface RateLimit {
  /** tokens added per second */
  perSecond: number;
  /** bucket size: the most requests accepted in a burst */
  burst: number;
  /** the text it was parsed from, e.g. "60/min" */
  source: string;
}

export interface ServerConfig {
  port: number;
  host: string;
  /** how the engine runs: models, data folder (jobs.sqlite, outputs/, cache/, webhook-secret), precision, device */
  engine: EngineSettings;
  /** an A1111 / ComfyUI style models folder, scanned for checkpoints, LoRAs and embeddings */
  modelsDir?: string;
  /** empty (and no admin keys) = no authentication */
  apiKeys: string[];
  /** keys that may also read every client's jobs */
  adminKeys: string[];
  /** with keys: how long the signed output URLs in results stay valid, seconds */
  outputUrlTtlSeconds: number;
  /** with keys: failed key checks allowed per client address before it is blocked for one window */
  authFailureLimit: RateLimit;
  /** per API key (or per client address without keys), applied to submissions; undefined = unlimited */
  rateLimit?: RateLimit;
  /** CIDR ranges server-side fetches (image_url, LoRA URLs, webhooks) may reach besides public addresses */
  allowNetworks: string[];
  /** HMAC key for webhook signatures; undefined = generated once and kept in <dataDir>/webhook-secret */
  webhookSecret?: string;
  /** largest output (and input) image, in pixels */
  maxPixels: number;
  /** largest image_url download, bytes */
  maxImageBytes: number;
  /** largest request body, bytes (data: URIs travel in the body) */
  bodyLimit: number;
  /** base of absolute URLs in responses; undefined = taken from the request's Host */
  publicUrl?: string;
  logLevel: string;
  /** how long a graceful shutdown waits for the running job before re-queueing it */
  shutdownGraceMs: number;
  /** webhook delivery: attempts and the first retry delay (doubles each time, capped at 5 min) */
  webhookAttempts: number;
  webhookRetryBaseMs: number;
  /** a job found running after a crash is re-queued until it has been started this many times */
  maxAttempts: number;
}

/** The server's own options (the engine's are ENGINE_OPTIONS). */
const SERVER_OPTIONS: readonly OptionSpec[] = [
  { flag: 'port', env: 'PORT', kind: 'integer', min: 0, max: 65535, help: 'TCP port (default 8080)' },
  { flag: 'host', env: 'HOST', kind: 'string', help: 'address to bind (default 127.0.0.1; use 0.0.0.0 to serve other machines)' },
  { flag: 'models-dir', env: 'ATELIER_MODELS_DIR', kind: 'string', help: 'A1111 / ComfyUI models folder (checkpoints, loras, embeddings)' },
  { flag: 'api-key', env: 'ATELIER_API_KEYS', kind: 'list', help: 'accepted API keys, comma-separated; none = open server' },
  { flag: 'admin-key', env: 'ATELIER_ADMIN_KEYS', kind: 'list', help: 'admin API keys, comma-separated: like --api-key, and may read every client\'s requests' },
  { flag: 'output-url-ttl', env: 'ATELIER_OUTPUT_URL_TTL', kind: 'string', help: 'with keys: validity of the signed output URLs in results, e.g. 7d, 12h, 3600 (seconds) (default 7d)' },
  { flag: 'auth-failure-limit', env: 'ATELIER_AUTH_FAILURE_LIMIT', kind: 'string', help: 'with keys: failed key checks per client address before it is blocked for that period, e.g. 10/min (default)' },
  { flag: 'rate-limit', env: 'ATELIER_RATE_LIMIT', kind: 'string', help: 'submissions per key, e.g. 60/min, 2/s, 1000/h (default unlimited)' },
  { flag: 'allow-network', env: 'ATELIER_ALLOW_NETWORKS', kind: 'list', help: 'CIDRs that server-side fetches may reach besides the public internet' },
  { flag: 'webhook-secret', env: 'ATELIER_WEBHOOK_SECRET', kind: 'string', help: 'webhook signing secret (default: generated into <data-dir>/webhook-secret)' },
  { flag: 'max-pixels', env: 'ATELIER_MAX_PIXELS', kind: 'integer', min: 4096, max: 200_000_000, help: 'largest image in pixels (default 16777216 = 4096×4096)' },
  { flag: 'max-image-bytes', env: 'ATELIER_MAX_IMAGE_BYTES', kind: 'integer', min: 1024, max: 2 ** 31, help: 'largest image_url download (default 26214400 = 25 MiB)' },
  { flag: 'body-limit', env: 'ATELIER_BODY_LIMIT', kind: 'integer', min: 1024, max: 2 ** 31, help: 'largest request body in bytes (default 52428800 = 50 MiB)' },
  { flag: 'public-url', env: 'ATELIER_PUBLIC_URL', kind: 'string', help: 'base of the URLs in responses, e.g. https://atelier.example.com' },
  { flag: 'log-level', env: 'ATELIER_LOG_LEVEL', kind: 'string', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], help: 'log level (default info)' },
  { flag: 'shutdown-grace', env: 'ATELIER_SHUTDOWN_GRACE_MS', kind: 'integer', min: 0, max: 3_600_000, help: 'ms a shutdown waits for the running job before re-queueing it (default 30000)' },
  { flag: 'webhook-attempts', env: 'ATELIER_WEBHOOK_ATTEMPTS', kind: 'integer', min: 1, max: 100, help: 'webhook delivery attempts (default 10)' },
  { flag: 'webhook-retry-ms', env: 'ATELIER_WEBHOOK_RETRY_MS', kind: 'integer', min: 1, max: 600_000, help: 'first webhook retry delay in ms, doubled each time (default 1000)' },
];

/** Every option of `atelier serve`: the server's and the engine's (the table behind `--help` and the README). */
export const OPTIONS: readonly OptionSpec[] = [...SERVER_OPTIONS, ...ENGINE_OPTIONS];

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): ServerConfig {
  const parsed = parseOptions(argv, OPTIONS, env);
  const v = parsed.values;
  const publicUrl = v['public-url'] as string | undefined;
  if (publicUrl !== undefined && !/^https?:\/\/[^/]+/.test(publicUrl)) {
    throw optionError(OPTIONS.find((o) => o.flag === 'public-url'), publicUrl, 'an http(s) URL such as https://atelier.example.com');
  }
  const rate = v['rate-limit'] as string | undefined;
  const modelsDir = v['models-dir'] as string | undefined;
  return {
    port: (v.port as number | undefined) ?? 8080,
    host: (v.host as string | undefined) ?? '127.0.0.1',
    engine: engineSettingsFrom(parsed, cwd),
    modelsDir: modelsDir === undefined ? undefined : path.resolve(cwd, modelsDir),
    apiKeys: (v['api-key'] as string[] | undefined) ?? [],
    adminKeys: (v['admin-key'] as string[] | undefined) ?? [],
    outputUrlTtlSeconds: parseDuration((v['output-url-ttl'] as string | undefined) ?? '7d', 'output-url-ttl'),
    authFailureLimit: parseRateLimit((v['auth-failure-limit'] as string | undefined) ?? '10/min', 'auth-failure-limit'),
    rateLimit: rate === undefined ? undefined : parseRateLimit(rate),
    allowNetworks: (v['allow-network'] as string[] | undefined) ?? [],
    webhookSecret: v['webhook-secret'] as string | undefined,
    maxPixels: (v['max-pixels'] as number | undefined) ?? 16777216,
    maxImageBytes: (v['max-image-bytes'] as number | undefined) ?? 25 * 1024 * 1024,
    bodyLimit: (v['body-limit'] as number | undefined) ?? 50 * 1024 * 1024,
    publicUrl: publicUrl?.replace(/\/+$/, ''),
    logLevel: (v['log-level'] as string | undefined) ?? 'info',
    shutdownGraceMs: (v['shutdown-grace'] as number | undefined) ?? 30000,
    webhookAttempts: (v['webhook-attempts'] as number | undefined) ?? 10,
    webhookRetryBaseMs: (v['webhook-retry-ms'] as number | undefined) ?? 1000,
    maxAttempts: 2,
  };
}

/** `60/min`, `2/s`, `1000/h`, or a bare number (per minute). `flag` names the option in errors. */
export function parseRateLimit(text: string, flag = 'rate-limit'): RateLimit {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(s|sec|second|m|min|minute|h|hour))?\s*$/i.exec(text);
  if (!m || Number(m[1]) <= 0) throw optionError(OPTIONS.find((o) => o.flag === flag), text, 'a rate such as 60/min, 2/s or 1000/h');
  const n = Number(m[1]);
  const unit = (m[2] ?? 'min').toLowerCase();
  const seconds = unit.startsWith('s') ? 1 : unit.startsWith('h') ? 3600 : 60;
  return { perSecond: n / seconds, burst: Math.max(1, Math.floor(n)), source: text.trim() };
}

/** `7d`, `12h`, `30m`, `90s` or a bare number of seconds; at least 60 s, at most 365 days. */
export function parseDuration(text: string, flag: string): number {
  const m = /^\s*(\d+)\s*(s|m|h|d)?\s*$/i.exec(text);
  const seconds = m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's').toLowerCase() as 's' | 'm' | 'h' | 'd'] : NaN;
  if (!(seconds >= 60 && seconds <= 365 * 86400)) {
    throw optionError(OPTIONS.find((o) => o.flag === flag), text, 'a duration from 60 s to 365 d such as 7d, 12h, 30m or 3600');
  }
  return seconds;
}

export function helpText(): string {
  return ['Usage: atelier serve [options]', '', `  ${'flag'.padEnd(26)} ${'environment variable'.padEnd(27)} meaning`, ...optionsHelp(OPTIONS)].join('\n');
}

/**
 * Server configuration from command-line flags and environment variables (flags win).
 * Every setting has an embedded default, so `atelier serve` runs with nothing configured.
 */
import { WEIGHT_PRECISIONS, type WeightPrecision } from '../weights/types.ts';
import { UNET_QUANTIZATIONS, VAE_QUANTIZATIONS as VAE_QUANT_SCHEMES, type UNetQuantization, type VaeQuantScheme } from '../contract/tables.ts';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';

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
  /** absolute; holds jobs.sqlite, outputs/, cache/, webhook-secret */
  dataDir: string;
  /** explicit checkpoints: a .safetensors file or a diffusers folder each */
  models: { name: string; path: string }[];
  /** an A1111 / ComfyUI style models folder, scanned for checkpoints, LoRAs and embeddings */
  modelsDir?: string;
  defaultModel?: string;
  /** empty = no authentication */
  apiKeys: string[];
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
  /** engine threads; undefined = the engine decides */
  threads?: number;
  /** onnxruntime execution provider */
  device: 'cpu' | 'cuda' | 'tensorrt' | 'webgpu';
  /** reduced-precision UNet Linear layers; undefined = fp32 */
  quantize?: UNetQuantization;
  /** VAE decoder convolutions in int8; undefined = fp32 */
  vaeQuantize?: VaeQuantScheme;
  /** how UNet and text-encoder weights are held in memory */
  weights: WeightPrecision;
  /** how long a graceful shutdown waits for the running job before re-queueing it */
  shutdownGraceMs: number;
  /** webhook delivery: attempts and the first retry delay (doubles each time, capped at 5 min) */
  webhookAttempts: number;
  webhookRetryBaseMs: number;
  /** a job found running after a crash is re-queued until it has been started this many times */
  maxAttempts: number;
}

interface Option {
  flag: string;
  env: string;
  help: string;
  repeat?: boolean;
}

/** The table behind `--help` and the README's configuration section. */
export const OPTIONS: readonly Option[] = [
  { flag: 'port', env: 'PORT', help: 'TCP port (default 8080)' },
  { flag: 'host', env: 'HOST', help: 'address to bind (default 127.0.0.1; use 0.0.0.0 to serve other machines)' },
  { flag: 'data-dir', env: 'ATELIER_DATA_DIR', help: 'job store, outputs and caches (default ./data)' },
  { flag: 'model', env: 'ATELIER_MODEL', help: 'checkpoint file or diffusers folder; repeat or comma-separate for several', repeat: true },
  { flag: 'models-dir', env: 'ATELIER_MODELS_DIR', help: 'A1111 / ComfyUI models folder (checkpoints, loras, embeddings)' },
  { flag: 'default-model', env: 'ATELIER_DEFAULT_MODEL', help: 'model used when a request names none (default: the first)' },
  { flag: 'api-key', env: 'ATELIER_API_KEYS', help: 'accepted API keys, comma-separated; none = open server', repeat: true },
  { flag: 'rate-limit', env: 'ATELIER_RATE_LIMIT', help: 'submissions per key, e.g. 60/min, 2/s, 1000/h (default unlimited)' },
  { flag: 'allow-network', env: 'ATELIER_ALLOW_NETWORKS', help: 'CIDRs that server-side fetches may reach besides the public internet', repeat: true },
  { flag: 'webhook-secret', env: 'ATELIER_WEBHOOK_SECRET', help: 'webhook signing secret (default: generated into <data-dir>/webhook-secret)' },
  { flag: 'max-pixels', env: 'ATELIER_MAX_PIXELS', help: 'largest image in pixels (default 16777216 = 4096×4096)' },
  { flag: 'max-image-bytes', env: 'ATELIER_MAX_IMAGE_BYTES', help: 'largest image_url download (default 26214400 = 25 MiB)' },
  { flag: 'body-limit', env: 'ATELIER_BODY_LIMIT', help: 'largest request body in bytes (default 52428800 = 50 MiB)' },
  { flag: 'public-url', env: 'ATELIER_PUBLIC_URL', help: 'base of the URLs in responses, e.g. https://atelier.example.com' },
  { flag: 'log-level', env: 'ATELIER_LOG_LEVEL', help: 'fatal, error, warn, info, debug, trace (default info)' },
  { flag: 'threads', env: 'ATELIER_THREADS', help: 'engine compute threads (default: all cores)' },
  { flag: 'quantize', env: 'ATELIER_QUANTIZE', help: 'int8 or int8-block: quantise the UNet\'s transformer Linear layers; int8-full: int8 Linear layers and resnet convolutions (fastest; calibrated once per checkpoint). Faster on CPU, slightly different images; default off = fp32' },
  { flag: 'vae-quantize', env: 'ATELIER_VAE_QUANTIZE', help: 'int8: run the VAE decoder\'s resnet convolutions in int8 (decode ~1.5× faster on CPU, images within ~1 level; calibrated once per checkpoint; default off = fp32)' },
  { flag: 'weights', env: 'ATELIER_WEIGHTS', help: 'fp32 (default, fastest on CPU) or fp16: hold UNet and text-encoder weights in 16 bits (half the memory, computed in fp32; a 16-bit checkpoint gives the same images)' },
  { flag: 'device', env: 'ATELIER_DEVICE', help: 'cpu (default), cuda, tensorrt or webgpu (GPU ones need onnxruntime GPU libraries)' },
  { flag: 'shutdown-grace', env: 'ATELIER_SHUTDOWN_GRACE_MS', help: 'ms a shutdown waits for the running job before re-queueing it (default 30000)' },
  { flag: 'webhook-attempts', env: 'ATELIER_WEBHOOK_ATTEMPTS', help: 'webhook delivery attempts (default 10)' },
  { flag: 'webhook-retry-ms', env: 'ATELIER_WEBHOOK_RETRY_MS', help: 'first webhook retry delay in ms, doubled each time (default 1000)' },
];

/** Parse `--flag value`, `--flag=value` (repeatable flags accumulate) and the matching environment variables. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): ServerConfig {
  const flags = parseFlags(argv);
  const get = (flag: string): string | undefined => {
    const opt = OPTIONS.find((o) => o.flag === flag)!;
    const fromFlags = flags.get(flag);
    if (fromFlags && fromFlags.length > 0) return opt.repeat ? fromFlags.join(',') : fromFlags[fromFlags.length - 1];
    const v = env[opt.env];
    return v === undefined || v === '' ? undefined : v;
  };
  const list = (flag: string): string[] =>
    (get(flag) ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);

  const dataDir = path.resolve(cwd, get('data-dir') ?? './data');
  const models = list('model').map((p) => {
    const abs = path.resolve(cwd, p);
    return { name: modelName(abs), path: abs };
  });
  const modelsDir = get('models-dir');
  const publicUrl = get('public-url');
  if (publicUrl !== undefined && !/^https?:\/\/[^/]+/.test(publicUrl)) {
    throw configError('public-url', publicUrl, 'an http(s) URL such as https://atelier.example.com');
  }
  const rate = get('rate-limit');
  return {
    port: int('port', get('port') ?? '8080', 0, 65535),
    host: get('host') ?? '127.0.0.1',
    dataDir,
    models,
    modelsDir: modelsDir === undefined ? undefined : path.resolve(cwd, modelsDir),
    defaultModel: get('default-model'),
    apiKeys: list('api-key'),
    rateLimit: rate === undefined ? undefined : parseRateLimit(rate),
    allowNetworks: list('allow-network'),
    webhookSecret: get('webhook-secret'),
    maxPixels: int('max-pixels', get('max-pixels') ?? '16777216', 4096, 200_000_000),
    maxImageBytes: int('max-image-bytes', get('max-image-bytes') ?? String(25 * 1024 * 1024), 1024, 2 ** 31),
    bodyLimit: int('body-limit', get('body-limit') ?? String(50 * 1024 * 1024), 1024, 2 ** 31),
    publicUrl: publicUrl?.replace(/\/+$/, ''),
    logLevel: oneOf('log-level', get('log-level') ?? 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    threads: get('threads') === undefined ? undefined : int('threads', get('threads')!, 1, 1024),
    device: device(get('device')),
    quantize: quantize(get('quantize')),
    vaeQuantize: vaeQuantize(get('vae-quantize')),
    weights: oneOf('weights', get('weights') ?? 'fp32', [...WEIGHT_PRECISIONS]) as WeightPrecision,
    shutdownGraceMs: int('shutdown-grace', get('shutdown-grace') ?? '30000', 0, 3_600_000),
    webhookAttempts: int('webhook-attempts', get('webhook-attempts') ?? '10', 1, 100),
    webhookRetryBaseMs: int('webhook-retry-ms', get('webhook-retry-ms') ?? '1000', 1, 600_000),
    maxAttempts: 2,
  };
}

/** `60/min`, `2/s`, `1000/h`, or a bare number (per minute). */
export function parseRateLimit(text: string): RateLimit {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(s|sec|second|m|min|minute|h|hour))?\s*$/i.exec(text);
  if (!m || Number(m[1]) <= 0) throw configError('rate-limit', text, 'a rate such as 60/min, 2/s or 1000/h');
  const n = Number(m[1]);
  const unit = (m[2] ?? 'min').toLowerCase();
  const seconds = unit.startsWith('s') ? 1 : unit.startsWith('h') ? 3600 : 60;
  return { perSecond: n / seconds, burst: Math.max(1, Math.floor(n)), source: text.trim() };
}

export function helpText(): string {
  const rows = OPTIONS.map((o) => `  --${o.flag.padEnd(17)} ${o.env.padEnd(26)} ${o.help}`);
  return ['Usage: atelier serve [options]', '', '  flag               environment variable       meaning', ...rows].join('\n');
}

function parseFlags(argv: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw configError('argv', arg, 'flags of the form --name value');
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    if (!OPTIONS.some((o) => o.flag === name)) {
      throw configError(name, arg, `one of ${OPTIONS.map((o) => `--${o.flag}`).join(', ')}`);
    }
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined) throw configError(name, arg, 'a value after the flag');
      value = next;
      i++;
    }
    out.set(name, [...(out.get(name) ?? []), value]);
  }
  return out;
}

function modelName(abs: string): string {
  return path.basename(abs).replace(/\.(safetensors|ckpt)$/i, '');
}

function int(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || n < min || n > max) throw configError(flag, text, `an integer ${min} – ${max}`);
  return n;
}

function oneOf(flag: string, text: string, allowed: string[]): string {
  if (!allowed.includes(text)) throw configError(flag, text, `one of ${allowed.join(', ')}`);
  return text;
}

function configError(flag: string, value: string, allowed: string): AtelierError {
  const opt = OPTIONS.find((o) => o.flag === flag);
  const where = opt ? `--${flag} / ${opt.env}` : flag;
  return new AtelierError('INVALID_INPUT', `${where}: ${JSON.stringify(value)} is not valid; expected ${allowed}`, { field: flag });
}

const DEVICES = ['cpu', 'cuda', 'tensorrt', 'webgpu'] as const;

function device(v: string | undefined): ServerConfig['device'] {
  if (v === undefined) return 'cpu';
  if (!(DEVICES as readonly string[]).includes(v)) throw configError('device', v, DEVICES.join(', '));
  return v as ServerConfig['device'];
}

function vaeQuantize(v: string | undefined): ServerConfig['vaeQuantize'] {
  if (v === undefined || v === 'off') return undefined;
  if (!(VAE_QUANT_SCHEMES as readonly string[]).includes(v)) throw configError('vae-quantize', v, `${VAE_QUANT_SCHEMES.join(', ')} or off`);
  return v as VaeQuantScheme;
}

function quantize(v: string | undefined): ServerConfig['quantize'] {
  if (v === undefined || v === 'off' || v === 'none') return undefined;
  if (!(UNET_QUANTIZATIONS as readonly string[]).includes(v)) throw configError('quantize', v, `${UNET_QUANTIZATIONS.join(', ')} or off`);
  return v as UNetQuantization;
}

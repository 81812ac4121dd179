/**
 * Build the HTTP service: job queue + runner + webhooks behind Fastify, with auth, rate limits, metrics,
 * structured logs with request ids, and a graceful shutdown (app.close()) that finishes or re-queues the running job.
 * The engine is injected (the real one, or the test engine) and stays owned by the caller.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Engine } from '../contract/types.ts';
import { AtelierError } from '../contract/errors.ts';
import { parseAllowList, type AllowList } from '../images/address-guard.ts';
import { DownloadCache } from '../images/download-cache.ts';
import type { JobQueue } from '../jobs/queue.ts';
import { AdapterFiles, type AdapterDirs } from '../jobs/adapter-sources.ts';
import { Runner } from '../jobs/runner.ts';
import { SqliteQueue } from '../jobs/sqlite-queue.ts';
import { adapterDirs, type DiscoveredAdapters } from './adapters.ts';
import { checkAccess } from './access.ts';
import { AuthFailureLimiter } from './auth-failures.ts';
import { KeyAuth, RateLimiter } from './auth.ts';
import type { ServerConfig } from './config.ts';
import { clientErrorHandler, frameworkErrors, installErrorHandling } from './errors.ts';
import { installJsonParser } from './json-body.ts';
import { Metrics } from './metrics.ts';
import { loadOrCreateOutputSecret, OutputUrlSigner } from './output-urls.ts';
import { registerOpsRoutes } from './routes/ops.ts';
import { registerRequestRoutes } from './routes/requests.ts';
import { registerSubmitRoutes } from './routes/submit.ts';
import { loadOrCreateSecret, WebhookSender } from './webhooks.ts';
import { webhookPayload } from './wire.ts';

export interface ServerDeps {
  engine: Engine;
  /** defaults to the embedded SQLite queue in <dataDir>/jobs.sqlite */
  queue?: JobQueue;
  /** Fastify logger option; defaults to JSON logs at config.logLevel */
  logger?: FastifyServerOptions['logger'];
  /** runner fallback poll interval, ms */
  pollMs?: number;
  /** LoRAs and embeddings discoverModels found in config.modelsDir, selectable by name */
  discovered?: DiscoveredAdapters;
}

export interface AtelierContext {
  config: ServerConfig;
  engine: Engine;
  queue: JobQueue;
  runner: Runner;
  metrics: Metrics;
  auth: KeyAuth;
  limiter?: RateLimiter;
  /** failed key checks per client address (keys on) */
  authFailures: AuthFailureLimiter;
  /** signs the output URLs in results (keys on only: without keys outputs are open) */
  outputUrls?: OutputUrlSigner;
  allow: AllowList;
  adapterDirs: AdapterDirs;
  webhooks: WebhookSender;
  webhookSecret: string;
  outputsDir: string;
  /** true once close() began: new requests get 503 SHUTTING_DOWN */
  closing: boolean;
  /** open status streams, ended on shutdown */
  streams: Set<() => void>;
  /** ids of sync (/run) jobs whose client is waiting */
  syncJobs: Set<string>;
}

declare module 'fastify' {
  interface FastifyInstance {
    atelier: AtelierContext;
  }
  interface FastifyContextConfig {
    /** no API key needed */
    public?: boolean;
  }
}

export function buildServer(config: ServerConfig, deps: ServerDeps): FastifyInstance {
  const app = Fastify({
    logger: deps.logger ?? { level: config.logLevel },
    bodyLimit: config.bodyLimit,
    requestIdHeader: false,
    genReqId: (req) => {
      const h = req.headers['x-request-id'];
      return typeof h === 'string' && /^[\w.:-]{1,128}$/.test(h) ? h : randomUUID();
    },
    return503OnClosing: false,
    // bad URL encoding and over-long path parameters (e.g. a 10,000-character request id) answer in our error shape
    frameworkErrors,
    clientErrorHandler,
    forceCloseConnections: 'idle',
  });

  const outputsDir = path.join(config.engine.dataDir, 'outputs');
  fs.mkdirSync(outputsDir, { recursive: true });
  const queue = deps.queue ?? new SqliteQueue(path.join(config.engine.dataDir, 'jobs.sqlite'));
  const metrics = new Metrics();
  const allow = parseAllowList(config.allowNetworks);
  const cache = new DownloadCache(path.join(config.engine.dataDir, 'cache', 'adapters'), 20 * 1024 ** 3);
  const runner = new Runner({
    queue,
    engine: deps.engine,
    outputsDir,
    metrics,
    log: app.log,
    pollMs: deps.pollMs,
    adapterFiles: new AdapterFiles(cache, allow),
  });
  const auth = new KeyAuth(config.apiKeys, config.adminKeys);
  const outputUrls = auth.enabled ? new OutputUrlSigner(loadOrCreateOutputSecret(config.engine.dataDir), config.outputUrlTtlSeconds) : undefined;
  const webhookSecret = loadOrCreateSecret(config.engine.dataDir, config.webhookSecret);
  const webhooks = new WebhookSender({
    queue,
    secret: webhookSecret,
    allow,
    attempts: config.webhookAttempts,
    retryBaseMs: config.webhookRetryBaseMs,
    log: app.log,
    metrics,
    payloadOf: (job) => webhookPayload(job, outputUrls),
  });
  const ctx: AtelierContext = {
    config,
    engine: deps.engine,
    queue,
    runner,
    metrics,
    auth,
    ...(config.rateLimit ? { limiter: new RateLimiter(config.rateLimit) } : {}),
    authFailures: new AuthFailureLimiter(config.authFailureLimit),
    ...(outputUrls ? { outputUrls } : {}),
    allow,
    adapterDirs: adapterDirs(config.modelsDir, deps.discovered),
    webhooks,
    webhookSecret,
    outputsDir,
    closing: false,
    streams: new Set(),
    syncJobs: new Set(),
  };
  app.decorate('atelier', ctx);
  metrics.defineGauge('atelier_queue_depth', 'jobs waiting in the queue', async () => [{ labels: {}, value: (await queue.counts()).queued }]);
  metrics.defineGauge('atelier_jobs_running', 'jobs being run', async () => [{ labels: {}, value: (await queue.counts()).running }]);
  metrics.defineGauge('atelier_models', 'models served', async () => [{ labels: {}, value: deps.engine.listModels().length }]);

  installErrorHandling(app);
  installJsonParser(app, config.bodyLimit);

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (ctx.closing) throw new AtelierError('SHUTTING_DOWN', 'the server is shutting down; retry shortly');
    await checkAccess(request, ctx);
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.inc('atelier_http_requests_total', { method: request.method, route, status: String(reply.statusCode) });
    metrics.observe('atelier_http_request_duration_seconds', reply.elapsedTime / 1000, { route });
  });

  void app.register(fastifyStatic, {
    root: outputsDir,
    prefix: '/outputs/',
    decorateReply: false,
    index: false,
    immutable: true,
    maxAge: '365d',
    wildcard: true,
    allowedPath: (p) => /^\/[0-9a-f-]{36}\/\d+\.(jpg|png)$/.test(p),
    setHeaders: (reply) => {
      reply.header('x-content-type-options', 'nosniff');
      // With keys an output is not for shared caches; a signed URL is cached no longer than it is valid.
      if (outputUrls) {
        const q = reply.request.query as Record<string, unknown>;
        const maxAge = reply.request.identity ? 365 * 86400 : outputUrls.remaining(q);
        reply.header('cache-control', `private, max-age=${maxAge}, immutable`);
      }
    },
  });
  registerSubmitRoutes(app);
  registerRequestRoutes(app);
  registerOpsRoutes(app);

  app.addHook('onReady', async () => {
    const { requeued, failed } = await queue.recover(config.maxAttempts);
    if (requeued.length || failed.length) app.log.warn({ requeued, failed }, 'recovered jobs left by a previous run');
    runner.start();
    await webhooks.start();
  });
  app.addHook('preClose', async () => {
    ctx.closing = true;
    app.log.info({ graceMs: config.shutdownGraceMs, running: runner.runningJobId }, 'shutting down');
    await runner.stop(config.shutdownGraceMs);
    webhooks.stop();
    // Waiting /run clients get an answer now: their queued jobs will not run in this process.
    for (const id of ctx.syncJobs) {
      await queue.fail(id, { code: 'SHUTTING_DOWN', message: 'the server shut down before this request ran; submit it again' });
    }
    for (const end of ctx.streams) end();
  });
  app.addHook('onClose', async () => {
    await queue.close();
  });
  return app;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** key fingerprint (keys on) or client address: the rate-limit bucket */
    caller?: string;
  }
}

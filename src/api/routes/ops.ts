/** /healthz, /metrics (Prometheus), /openapi.json, /docs. */
import type { FastifyInstance } from 'fastify';
import { docsPage, openApiDocument } from '../openapi.ts';
import { modelChoice } from '../prepare.ts';
import { listLocalAdapters } from '../adapters.ts';
import { canRead } from '../access.ts';

export function registerOpsRoutes(app: FastifyInstance): void {
  // With keys, a caller without one (a load balancer's probe) learns only whether the server is up.
  app.get('/healthz', { config: { optionalKey: true } }, async (request, reply) => {
    const ctx = app.atelier;
    const models = ctx.engine.listModels();
    const ok = models.length > 0 && !ctx.closing;
    const status = ctx.closing ? 'shutting_down' : ok ? 'ok' : 'no_model';
    if (ctx.auth.enabled && !request.identity) return reply.code(ok ? 200 : 503).send({ status });
    const counts = await ctx.queue.counts();
    const running = ctx.runner.runningJobId;
    const runningJob = running === undefined ? undefined : await ctx.queue.get(running);
    return reply.code(ok ? 200 : 503).send({
      status,
      models: models.map((m) => ({ name: m.name, layout: m.layout, is_test_model: m.isTestModel })),
      queue: { queued: counts.queued, running: counts.running },
      // another key's request id is not shown (an admin key sees every one)
      running_request_id: running !== undefined && (!runningJob || canRead(runningJob, request.identity)) ? running : null,
    });
  });

  /** What this server can serve locally: checkpoints (choose with `model`), LoRAs and embeddings (by name in `path`). */
  app.get('/v1/models', async () => {
    const ctx = app.atelier;
    const m = modelChoice(ctx.engine, ctx.config.engine.defaultModel);
    return {
      checkpoints: ctx.engine.listModels().map((x) => ({ name: x.name, layout: x.layout, is_test_model: x.isTestModel, default: x.name === m.default })),
      loras: listLocalAdapters(ctx.adapterDirs.loras, ctx.adapterDirs.known.loras),
      embeddings: listLocalAdapters(ctx.adapterDirs.embeddings, ctx.adapterDirs.known.embeddings),
    };
  });

  app.get('/metrics', async (_request, reply) => {
    reply.type('text/plain; version=0.0.4; charset=utf-8');
    return app.atelier.metrics.render();
  });

  app.get('/openapi.json', { config: { public: true } }, async (request) => {
    const ctx = app.atelier;
    const m = modelChoice(ctx.engine, ctx.config.engine.defaultModel);
    return openApiDocument(m.names, m.default, ctx.config.publicUrl ?? `${request.protocol}://${request.host}`);
  });

  app.get('/docs', { config: { public: true } }, async (_request, reply) => {
    const ctx = app.atelier;
    const m = modelChoice(ctx.engine, ctx.config.engine.defaultModel);
    return reply.type('text/html; charset=utf-8').send(docsPage(m.names, m.default));
  });
}

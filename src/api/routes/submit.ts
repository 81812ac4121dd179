/**
 * POST /queue/{id}: validate, prepare and enqueue; answer with the request id and its URLs.
 * POST /run/{id}:   the same job, answered directly when it finishes; a dropped connection cancels it.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Job, JobQueue } from '../../jobs/queue.ts';
import { TERMINAL_STATES } from '../../jobs/queue.ts';
import { appOf, ROUTE_IDS, type EndpointDef } from '../endpoints.ts';
import { prepareJob, validateInput } from '../prepare.ts';
import { vetWebhookUrl } from '../webhooks.ts';
import { requestBase, resultAnswer, urlsOf } from '../wire.ts';

export function registerSubmitRoutes(app: FastifyInstance): void {
  for (const [routeId, endpoint] of ROUTE_IDS) {
    app.post(`/queue/${routeId}`, async (request, reply) => {
      const ctx = app.atelier;
      const q = request.query as Record<string, string | undefined>;
      const webhookText = q.webhook ?? q.fal_webhook;
      const job = await submit(app, request, endpoint, routeId, 'queue', webhookText);
      const position = (await ctx.queue.queuePosition(job.id)) ?? 0;
      request.log.info({ jobId: job.id, endpoint: endpoint.id, position }, 'job queued');
      reply.header('x-fal-request-id', job.id);
      const base = requestBase(request, ctx.config.publicUrl);
      return { status: 'IN_QUEUE', request_id: job.id, ...urlsOf(job, base), queue_position: position };
    });

    app.post(`/run/${routeId}`, async (request, reply) => {
      const ctx = app.atelier;
      const job = await submit(app, request, endpoint, routeId, 'sync', undefined);
      request.log.info({ jobId: job.id, endpoint: endpoint.id }, 'sync job queued');
      const finished = waitForEnd(ctx.queue, job.id);
      ctx.syncJobs.add(job.id);
      // A client that goes away before the answer cancels the job (queued: at once; running: at the next step).
      const onClose = () => {
        if (!reply.raw.writableFinished) {
          request.log.info({ jobId: job.id }, 'client disconnected; cancelling its sync job');
          ctx.queue.cancel(job.id).catch((e) => request.log.warn({ err: e }, 'cancel failed'));
        }
      };
      reply.raw.on('close', onClose);
      if (request.raw.socket.destroyed) onClose(); // it left while the input was being prepared
      const done = await finished.finally(() => ctx.syncJobs.delete(job.id));
      reply.raw.off('close', onClose);
      const answer = resultAnswer(done, requestBase(request, ctx.config.publicUrl), ctx.outputUrls);
      reply.header('x-fal-request-id', job.id);
      if (answer.status === 200 && done.input.output.syncMode) {
        // sync_mode keeps nothing: the data URIs go out in this answer and are dropped from the store.
        reply.raw.once('finish', () => ctx.queue.purgeResult(job.id).catch((e) => request.log.warn({ err: e }, 'purge failed')));
      }
      return sendAnswer(reply, answer);
    });
  }
}

async function submit(
  app: FastifyInstance,
  request: FastifyRequest,
  endpoint: EndpointDef,
  routeId: string,
  mode: 'queue' | 'sync',
  webhookText: string | undefined,
): Promise<Job> {
  const ctx = app.atelier;
  if (ctx.limiter) ctx.limiter.take(request.caller ?? `ip-${request.ip}`);
  const wire = validateInput(endpoint, request.body, ctx.engine, ctx.config.engine.defaultModel);
  const webhookUrl = webhookText === undefined ? undefined : (await vetWebhookUrl(webhookText, ctx.allow)).href;
  const { input, inputImage } = await prepareJob(endpoint, wire, {
    engine: ctx.engine,
    maxPixels: ctx.config.maxPixels,
    maxImageBytes: ctx.config.maxImageBytes,
    allow: ctx.allow,
    adapterDirs: ctx.adapterDirs,
    httpRequestId: request.id,
  });
  return ctx.queue.add({
    id: randomUUID(),
    endpoint: endpoint.id,
    app: appOf(routeId),
    mode,
    input,
    ...(inputImage ? { inputImage } : {}),
    ...(webhookUrl ? { webhookUrl } : {}),
    baseUrl: requestBase(request, ctx.config.publicUrl),
    ...(request.identity ? { owner: request.identity.owner } : {}),
  });
}

/** Resolves with the job once it reached a final state. */
export function waitForEnd(queue: JobQueue, id: string): Promise<Job> {
  return new Promise<Job>((resolve, reject) => {
    let settled = false;
    const check = async () => {
      if (settled) return;
      const job = await queue.get(id);
      if (job && TERMINAL_STATES.includes(job.state) && !settled) {
        settled = true;
        unsubscribe();
        resolve(job);
      }
    };
    const unsubscribe = queue.subscribe((e) => {
      if (e.id === id && e.type === 'state' && TERMINAL_STATES.includes(e.state)) check().catch(reject);
    });
    check().catch(reject);
  });
}

export function sendAnswer(reply: FastifyReply, answer: { status: number; body: unknown }): FastifyReply {
  return reply.code(answer.status).type('application/json; charset=utf-8').send(answer.body);
}

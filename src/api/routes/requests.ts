/**
 * Per-request URLs, named by `{owner}/{app}` only (as fal's client builds them):
 *   GET  /queue/{owner}/{app}/requests/{id}/status[?logs=1]
 *   GET  /queue/{owner}/{app}/requests/{id}/status/stream[?logs=1]   (server-sent events, closed after COMPLETED)
 *   GET  /queue/{owner}/{app}/requests/{id}                          (the result)
 *   PUT  /queue/{owner}/{app}/requests/{id}/cancel
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AtelierError } from '../../contract/errors.ts';
import type { Job, JobLog } from '../../jobs/queue.ts';
import { canRead } from '../access.ts';
import { TERMINAL_STATES } from '../../jobs/queue.ts';
import { requestBase, resultAnswer, statusBody, toRequestLog } from '../wire.ts';
import { sendAnswer } from './submit.ts';

interface Params {
  owner: string;
  app: string;
  id: string;
}

const BASE = '/queue/:owner/:app/requests/:id';

export function registerRequestRoutes(app: FastifyInstance): void {
  const find = async (request: FastifyRequest): Promise<Job> => {
    const p = request.params as Params;
    const job = await app.atelier.queue.get(p.id);
    // Another key's job is answered exactly like a missing one, so its id is not confirmed.
    if (!job || job.app !== `${p.owner}/${p.app}` || !canRead(job, request.identity)) {
      throw new AtelierError('NOT_FOUND', `no request ${JSON.stringify(p.id)} under ${p.owner}/${p.app}`);
    }
    return job;
  };
  const wantsLogs = (request: FastifyRequest) => {
    const v = (request.query as Record<string, string | undefined>).logs;
    return v === '1' || v === 'true';
  };

  const base = (request: FastifyRequest) => requestBase(request, app.atelier.config.publicUrl);

  app.get(`${BASE}/status`, async (request) => statusBody(app.atelier.queue, await find(request), wantsLogs(request), base(request)));

  app.get(`${BASE}`, async (request, reply) => {
    const job = await find(request);
    const answer = resultAnswer(job, base(request), app.atelier.outputUrls);
    reply.header('x-fal-request-id', job.id);
    if (answer.status === 200 && job.input.output.syncMode) {
      reply.raw.once('finish', () => app.atelier.queue.purgeResult(job.id).catch((e) => request.log.warn({ err: e }, 'purge failed')));
    }
    return sendAnswer(reply, answer);
  });

  app.put(`${BASE}/cancel`, async (request, reply) => {
    const p = request.params as Params;
    const job = await app.atelier.queue.get(p.id);
    const visible = job && job.app === `${p.owner}/${p.app}` && canRead(job, request.identity);
    const outcome = visible ? await app.atelier.queue.cancel(p.id) : 'NOT_FOUND';
    if (outcome === 'CANCELLATION_REQUESTED') {
      request.log.info({ jobId: p.id }, 'cancellation requested');
      return reply.code(202).send({ status: outcome });
    }
    const err =
      outcome === 'NOT_FOUND'
        ? new AtelierError('NOT_FOUND', `no request ${JSON.stringify(p.id)} under ${p.owner}/${p.app}`)
        : new AtelierError('BAD_REQUEST', `request ${p.id} already completed; nothing to cancel`);
    return reply.code(err.status).send({ status: outcome, error: err.toJSON() });
  });

  app.get(`${BASE}/status/stream`, async (request, reply) => {
    const ctx = app.atelier;
    const job = await find(request);
    const withLogs = wantsLogs(request);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      'x-request-id': request.id,
      'x-fal-request-id': job.id,
    });
    // Each event is a full status object whose `logs` holds only the lines new since the previous event
    // (fal's client appends them), so a client that listens from the start sees every line once.
    let sentLogs = 0;
    let ended = false;
    let busy = Promise.resolve();
    const end = () => {
      if (ended) return;
      ended = true;
      clearInterval(heartbeat);
      unsubscribe();
      ctx.streams.delete(end);
      res.end();
    };
    const send = async () => {
      if (ended) return;
      const current = await ctx.queue.get(job.id);
      if (!current || ended) return end();
      const body = await statusBody(ctx.queue, current, false, base(request));
      if (withLogs) {
        const all: JobLog[] = await ctx.queue.logs(job.id);
        body.logs = all.slice(sentLogs).map(toRequestLog);
        sentLogs = all.length;
      }
      res.write(`data: ${JSON.stringify(body)}\n\n`);
      if (TERMINAL_STATES.includes(current.state)) end();
    };
    const enqueue = () => {
      busy = busy.then(send).catch((e) => {
        request.log.warn({ err: e }, 'status stream failed');
        end();
      });
    };
    const unsubscribe = ctx.queue.subscribe((e) => {
      if (e.id !== job.id || e.type === 'added' || e.type === 'cancel-requested') return;
      if (e.type === 'log' && !withLogs) return;
      enqueue();
    });
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 10_000);
    ctx.streams.add(end);
    res.on('close', end);
    enqueue();
  });
}

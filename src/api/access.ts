/**
 * Who may do what, checked before every route (server.ts's onRequest hook):
 * - without keys: everything is open, as before (the client address is the rate-limit bucket);
 * - with keys: a valid key on every route but the open ones (`/docs`, `/openapi.json`); `/healthz` answers
 *   without a key with its status only; `/outputs/…` takes a key or a signed URL (output-urls.ts);
 *   failed key checks are counted per client address and block it when there are too many (auth-failures.ts);
 * - a job is read only by the key that submitted it, an admin key, or — for jobs stored before owners — any key.
 */
import type { FastifyRequest } from 'fastify';
import { AtelierError } from '../contract/errors.ts';
import type { Job, JobQueue } from '../jobs/queue.ts';
import type { Identity } from './auth.ts';
import type { AuthFailureLimiter } from './auth-failures.ts';
import type { KeyAuth } from './auth.ts';
import type { OutputUrlSigner } from './output-urls.ts';

/** What the access checks read from the server's context. */
export interface AccessContext {
  auth: KeyAuth;
  authFailures: AuthFailureLimiter;
  outputUrls?: OutputUrlSigner;
  queue: JobQueue;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** the caller's key (keys on, key checked) */
    identity?: Identity;
  }
  interface FastifyContextConfig {
    /** a key is checked only when one is sent (the route answers less without one) */
    optionalKey?: boolean;
  }
}

export async function checkAccess(request: FastifyRequest, ctx: AccessContext): Promise<void> {
  const config = request.routeOptions.config;
  const output = request.url.startsWith('/outputs/');
  if (config?.public || !request.routeOptions.url) return;
  if (!ctx.auth.enabled) {
    // Outputs are capability URLs (unguessable request ids) so <img> tags work without headers.
    if (!output) request.caller = `ip-${request.ip}`;
    return;
  }
  const header = request.headers.authorization;
  if (header === undefined && output) return checkSignedOutput(request, ctx);
  if (header === undefined && config?.optionalKey) return;
  ctx.authFailures.check(request.ip);
  let identity: Identity | undefined;
  try {
    identity = ctx.auth.identify(header);
  } catch (e) {
    if (header !== undefined) ctx.authFailures.fail(request.ip); // a missing key is not a guess
    throw e;
  }
  if (!identity) return;
  request.identity = identity;
  request.caller = identity.fingerprint;
  if (output) await checkOutputOwner(request, ctx, identity);
}

/** Whether `identity` may see `job` (always, without keys). */
export function canRead(job: Pick<Job, 'owner'>, identity: Identity | undefined): boolean {
  return !identity || identity.admin || job.owner === undefined || job.owner === identity.owner;
}

function checkSignedOutput(request: FastifyRequest, ctx: AccessContext): void {
  const urlPath = request.url.split('?')[0]!;
  const query = (request.query ?? {}) as Record<string, unknown>;
  switch (ctx.outputUrls?.check(urlPath, query) ?? 'missing') {
    case 'ok':
      return;
    case 'missing':
      throw new AtelierError(
        'UNAUTHORIZED',
        'outputs need an API key or a signed URL: use the image URLs of the result (they are signed), or send "Authorization: Key <key>"',
      );
    case 'expired':
      throw new AtelierError(
        'FORBIDDEN',
        `this output URL expired at ${new Date(Number(query.expires) * 1000).toISOString()}; fetch the request's result again for fresh URLs`,
      );
    case 'invalid':
      throw new AtelierError('FORBIDDEN', 'the signature of this output URL does not match; use the image URLs exactly as the result gives them');
  }
}

async function checkOutputOwner(request: FastifyRequest, ctx: AccessContext, identity: Identity): Promise<void> {
  const m = /^\/outputs\/([0-9a-f-]{36})\//.exec(request.url);
  if (!m) return; // not an output file name: the static handler refuses it
  const job = await ctx.queue.get(m[1]!);
  if (!job || !canRead(job, identity)) throw new AtelierError('NOT_FOUND', `no output ${request.url.split('?')[0]}`);
}

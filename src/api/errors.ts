/**
 * Errors on the wire: every failure becomes
 * `{ error: { code, message, field? }, detail?: [{ loc, msg, type, ... }] }` with the catalog's status.
 * Client mistakes never surface as 500; fastify's own errors (bad JSON, body too large, …) are mapped too.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AtelierError, ERROR_CATALOG, isAtelierError, type ErrorCode } from '../contract/errors.ts';
import { ValidationFailed, type Issue } from '../contract/validate.ts';

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
  detail?: Issue[];
}

/** The wire body for any error. */
export function errorBody(err: AtelierError): ErrorBody {
  const body: ErrorBody = { error: err.toJSON() };
  if (err instanceof ValidationFailed) body.detail = err.issues;
  else if (err.field) body.detail = [{ loc: ['body', ...err.field.split('.')], msg: err.message, type: err.code.toLowerCase() }];
  return body;
}

/** HTTP status for a stored job error code (codes outside the catalog are our fault: 500). */
export function statusOfCode(code: string): number {
  return (ERROR_CATALOG as Record<string, { status: number }>)[code]?.status ?? 500;
}

/** Fastify's error codes for client mistakes → our catalog. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_BAD_URL: 'BAD_REQUEST',
  FST_ERR_ASYNC_CONSTRAINT: 'BAD_REQUEST',
  FST_ERR_VALIDATION: 'INVALID_INPUT',
};

/** Turn anything thrown into an AtelierError (unknown errors are INTERNAL, message kept for the log only). */
export function toAtelierError(err: unknown): AtelierError {
  if (isAtelierError(err)) return err;
  const fe = err as Partial<FastifyError> & { type?: string };
  if (fe && typeof fe.code === 'string' && FASTIFY_CODES[fe.code]) {
    const code = FASTIFY_CODES[fe.code]!;
    return new AtelierError(code, fastifyMessage(fe.code, fe.message ?? ''), { cause: err });
  }
  if (fe && fe.type === 'entity.parse.failed') return new AtelierError('BAD_REQUEST', `body is not valid JSON: ${fe.message}`);
  if (fe && typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new AtelierError(fe.statusCode === 413 ? 'PAYLOAD_TOO_LARGE' : fe.statusCode === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : 'BAD_REQUEST', fe.message, {
      cause: err,
    });
  }
  return new AtelierError('INTERNAL', 'internal error', { cause: err });
}

function fastifyMessage(code: string, message: string): string {
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return `request body is larger than this server accepts (${message})`;
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return `${message}; send the input as application/json`;
  return message;
}

export function sendError(reply: FastifyReply, err: AtelierError): FastifyReply {
  if (err.code === 'RATE_LIMITED' && 'retryAfterSeconds' in err) reply.header('retry-after', String(err.retryAfterSeconds));
  if (err.code === 'UNAUTHORIZED') reply.header('www-authenticate', 'Key realm="atelier", Bearer realm="atelier"');
  return reply.code(err.status).type('application/json; charset=utf-8').send(errorBody(err));
}

/** Install the error handler and the JSON 404 on `app`. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const err = toAtelierError(error);
    if (err.status >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ code: err.code, field: err.field }, err.message);
    return sendError(reply, err);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new AtelierError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}; see /docs for the endpoints`)),
  );
}

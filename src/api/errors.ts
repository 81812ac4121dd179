/**
 * Errors on the wire: every failure becomes
 * `{ error: { code, message, field? }, detail?: [{ loc, msg, type, ... }] }` with the catalog's status.
 * Client mistakes never surface as 500; fastify's own errors (bad JSON, body too large, …) are mapped too.
 */
import type { Socket } from 'node:net';
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
  FST_ERR_MAX_PARAM_LENGTH: 'URI_TOO_LONG',
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
    // e.g. the static plugin serving /outputs/ (403 for a path leaving the folder, 404 for a missing file)
    return new AtelierError(STATUS_CODES[fe.statusCode] ?? 'BAD_REQUEST', clip(fe.message ?? ''), { cause: err });
  }
  return new AtelierError('INTERNAL', 'internal error', { cause: err });
}

/** Client-error statuses from plugins and Node → our catalog (others are BAD_REQUEST). */
const STATUS_CODES: Record<number, ErrorCode> = {
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  408: 'REQUEST_TIMEOUT',
  413: 'PAYLOAD_TOO_LARGE',
  414: 'URI_TOO_LONG',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  431: 'HEADERS_TOO_LARGE',
};

function fastifyMessage(code: string, message: string): string {
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return `request body is larger than this server accepts (${message})`;
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return `${message}; send the input as application/json`;
  if (code === 'FST_ERR_MAX_PARAM_LENGTH') return 'a path segment of the URL is longer than this server accepts (100 characters; request ids have 36)';
  return clip(message);
}

/** Messages quote at most 200 characters of what the client sent (a URL may be kilobytes long). */
function clip(s: string): string {
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

export function sendError(reply: FastifyReply, err: AtelierError): FastifyReply {
  if (err.code === 'RATE_LIMITED' && 'retryAfterSeconds' in err) reply.header('retry-after', String(err.retryAfterSeconds));
  if (err.code === 'UNAUTHORIZED') reply.header('www-authenticate', 'Key realm="atelier", Bearer realm="atelier"');
  // serialised here so that an error body never fails on the way out (which would fall back to fastify's format)
  let text: string;
  try {
    text = JSON.stringify(errorBody(err));
  } catch {
    text = JSON.stringify({ error: err.toJSON() });
  }
  return reply.code(err.status).type('application/json; charset=utf-8').send(text);
}

/**
 * fastify's `frameworkErrors`: errors raised before routing (bad URL encoding, a path parameter over
 * maxParamLength), which otherwise answer in fastify's own format.
 */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const err = toAtelierError(error);
  request.log.info({ code: err.code }, err.message);
  reply.header('x-request-id', request.id);
  void sendError(reply, err);
}

/**
 * fastify's `clientErrorHandler`: a request Node's HTTP parser refused (malformed, headers too large, timed out)
 * gets a last answer in our error shape on the raw socket, which is then closed.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const code: ErrorCode = err.code === 'HPE_HEADER_OVERFLOW' ? 'HEADERS_TOO_LARGE' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'REQUEST_TIMEOUT' : 'BAD_REQUEST';
  const e = new AtelierError(code, code === 'BAD_REQUEST' ? `malformed HTTP request (${err.code ?? 'parse error'})` : undefined);
  const body = JSON.stringify(errorBody(e));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${e.status} ${code.replace(/_/g, ' ').toLowerCase()}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy();
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
    sendError(reply, new AtelierError('NOT_FOUND', `no route ${request.method} ${clip(request.url.split('?')[0]!)}; see /docs for the endpoints`)),
  );
}

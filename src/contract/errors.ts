/**
 * One catalog of error codes: code → HTTP status and a default message.
 * Throw `new AtelierError(code, message, { field, cause })`; the message quotes the bad value.
 */
export const ERROR_CATALOG = {
  INVALID_INPUT: { status: 422, message: 'invalid input' },
  UNKNOWN_FIELD: { status: 422, message: 'unknown field' },
  BAD_REQUEST: { status: 400, message: 'bad request' },
  UNAUTHORIZED: { status: 401, message: 'missing or invalid API key' },
  FORBIDDEN: { status: 403, message: 'forbidden' },
  NOT_FOUND: { status: 404, message: 'not found' },
  REQUEST_TIMEOUT: { status: 408, message: 'the request was not received in time' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'payload too large' },
  URI_TOO_LONG: { status: 414, message: 'request URL too long' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'unsupported media type' },
  RATE_LIMITED: { status: 429, message: 'rate limit exceeded' },
  HEADERS_TOO_LARGE: { status: 431, message: 'request headers too large' },
  NO_MODEL: { status: 503, message: 'no model loaded' },
  IMAGE_FETCH_FAILED: { status: 422, message: 'could not fetch the image' },
  IMAGE_DECODE_FAILED: { status: 422, message: 'could not decode the image' },
  URL_REFUSED: { status: 422, message: 'URL refused' },
  ADAPTER_INVALID: { status: 422, message: 'invalid LoRA or embedding file' },
  CHECKPOINT_INVALID: { status: 422, message: 'invalid checkpoint' },
  SAFETENSORS_INVALID: { status: 422, message: 'invalid safetensors file' },
  CANCELLED: { status: 499, message: 'cancelled' },
  RESULT_NOT_READY: { status: 409, message: 'the request has not completed yet' },
  RESULT_GONE: { status: 410, message: 'the result was delivered once and not kept (sync_mode)' },
  WORKER_CRASHED: { status: 500, message: 'the server stopped while running this request' },
  SHUTTING_DOWN: { status: 503, message: 'the server is shutting down' },
  INTERNAL: { status: 500, message: 'internal error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

export class AtelierError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly field?: string;

  constructor(code: ErrorCode, message?: string, options: { field?: string; cause?: unknown } = {}) {
    super(message ?? ERROR_CATALOG[code].message, { cause: options.cause });
    this.name = 'AtelierError';
    this.code = code;
    this.status = ERROR_CATALOG[code].status;
    this.field = options.field;
  }

  toJSON(): { code: ErrorCode; message: string; field?: string } {
    return { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) };
  }
}

export function isAtelierError(e: unknown): e is AtelierError {
  return e instanceof AtelierError;
}

/**
 * JSON request bodies: parsed with JSON.parse (which handles any nesting), then checked for their shape before
 * anything walks them recursively (validation, error detail, logging): at most MAX_BODY_DEPTH levels of objects and
 * arrays and at most MAX_BODY_KEYS keys in any one object. The check is one iterative pass that stops at the first
 * problem, so a hostile body (300,000 keys, nesting 5,000 deep) costs one parse and a short walk, never a stack
 * overflow or an answer that grows with the body.
 * An empty body is "no body" (fal's client sends Content-Type on body-less PUTs); bad JSON is a 400; anything but
 * application/json is a 415.
 */
import type { FastifyInstance } from 'fastify';
import { AtelierError } from '../contract/errors.ts';
import { ValidationFailed, type Issue } from '../contract/validate.ts';

/** Deepest nesting of objects/arrays accepted; the request schema needs 4 (body → embeddings → item → tokens). */
export const MAX_BODY_DEPTH = 16;
/** Most keys in one object; the largest request object has about 25 fields. */
export const MAX_BODY_KEYS = 256;
/** How many of an oversized object's keys are named in the error. */
const KEYS_NAMED = 5;

/** The first shape problem of a parsed JSON value, as a validation issue (undefined when the shape is fine). */
export function shapeIssue(value: unknown, limits = { maxDepth: MAX_BODY_DEPTH, maxKeys: MAX_BODY_KEYS }): Issue | undefined {
  // iterative depth-first walk: a stack of [value, depth, path]
  const stack: Array<[unknown, number, (string | number)[]]> = [[value, 0, ['body']]];
  while (stack.length > 0) {
    const [v, depth, loc] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth + 1 > limits.maxDepth) {
      return {
        loc,
        msg: `${where(loc)}nested more than ${limits.maxDepth} levels deep; at most ${limits.maxDepth} levels of objects and arrays allowed`,
        type: 'too_deep',
        ctx: { max_depth: limits.maxDepth },
      };
    }
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) if (typeof v[i] === 'object' && v[i] !== null) stack.push([v[i], depth + 1, [...loc, i]]);
      continue;
    }
    const keys: string[] = [];
    let count = 0;
    for (const k in v) {
      count++;
      if (keys.length < limits.maxKeys + 1) keys.push(k);
    }
    if (count > limits.maxKeys) {
      const named = keys.slice(0, KEYS_NAMED).map((k) => JSON.stringify(k.length > 40 ? `${k.slice(0, 37)}...` : k));
      return {
        loc,
        msg: `${where(loc)}an object with ${count} fields; at most ${limits.maxKeys} allowed (first: ${named.join(', ')}${count > KEYS_NAMED ? ` and ${count - KEYS_NAMED} more` : ''})`,
        type: 'too_many_fields',
        ctx: { max_fields: limits.maxKeys, fields: count },
      };
    }
    for (let i = keys.length - 1; i >= 0; i--) {
      const child = (v as Record<string, unknown>)[keys[i]!];
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1, [...loc, keys[i]!]]);
    }
  }
  return undefined;
}

function where(loc: readonly (string | number)[]): string {
  return loc.length > 1 ? `${loc.slice(1).join('.')}: ` : 'body: ';
}

/** Replace fastify's JSON parser: JSON only, shape-checked (see above). */
export function installJsonParser(app: FastifyInstance, bodyLimit: number): void {
  app.removeContentTypeParser(['application/json', 'text/plain']); // input is JSON only: anything else is a 415
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit }, (_req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      return done(new AtelierError('BAD_REQUEST', `request body is not valid JSON: ${(e as Error).message}`), undefined);
    }
    const issue = shapeIssue(value);
    if (issue) return done(new ValidationFailed([issue]), undefined);
    done(null, value);
  });
}

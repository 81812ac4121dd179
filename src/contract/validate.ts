/**
 * A small schema language: the request field table (fields.ts) drives validation (messages quote the value and
 * what is allowed), unknown-field rejection, defaults, the OpenAPI document and the CLI flags.
 * Issues follow the FastAPI / pydantic v2 shape (`loc`, `msg`, `type`, `input`, `ctx`).
 */

import { AtelierError, type ErrorCode } from './errors.ts';

export type FieldType =
  | { kind: 'string'; enum?: readonly string[]; minLength?: number; maxLength?: number; format?: 'uri' }
  | { kind: 'integer' | 'number'; min: number; max: number }
  | { kind: 'boolean' }
  | { kind: 'object'; fields: readonly FieldSpec[]; title?: string }
  | { kind: 'array'; items: FieldType; maxItems: number; minItems?: number }
  /** chosen by the value's JSON type: the first option whose kind matches is applied */
  | { kind: 'oneOf'; options: readonly FieldType[]; describe: string };

export interface FieldSpec {
  name: string;
  type: FieldType;
  description: string;
  required?: boolean;
  /** applied when the field is absent or null */
  default?: unknown;
  /** our addition to the fal-compatible contract */
  extension?: boolean;
}

export interface Issue {
  loc: (string | number)[];
  msg: string;
  type: string;
  input?: unknown;
  ctx?: Record<string, unknown>;
}

/**
 * Validate `body` against `fields`: returns the value with defaults filled in, and every issue found.
 * Absent or null optional fields take their default (absent when there is none).
 */
export function validateObject(
  body: unknown,
  fields: readonly FieldSpec[],
  loc: (string | number)[] = ['body'],
): { value: Record<string, unknown>; issues: Issue[] } {
  const issues: Issue[] = [];
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    issues.push({ loc, msg: `${where(loc)}expected a JSON object, got ${describe(body)}`, type: 'model_type', input: body });
    return { value: {}, issues };
  }
  const input = body as Record<string, unknown>;
  const value: Record<string, unknown> = {};
  const known = new Set(fields.map((f) => f.name));
  const unknown: string[] = [];
  for (const key of Object.keys(input)) if (!known.has(key)) unknown.push(key);
  issues.push(...unknownFieldIssues(unknown, input, [...known], loc));
  for (const f of fields) {
    const v = input[f.name];
    const at = [...loc, f.name];
    if (v === undefined || v === null) {
      if (f.required) issues.push({ loc: at, msg: `${where(at)}field required`, type: 'missing' });
      else if (f.default !== undefined) value[f.name] = structuredClone(f.default);
      continue;
    }
    const r = validateValue(v, f.type, at);
    issues.push(...r.issues);
    if (r.issues.length === 0) value[f.name] = r.value;
  }
  return { value, issues };
}

/** How many unknown fields are named (each with an issue); the rest are counted. */
const UNKNOWN_NAMED = 5;

/**
 * One issue per unknown field for the first five, each with a "did you mean" hint when one is close; the first
 * issue's message (the error's headline) names them, counts the rest and lists the allowed fields once.
 */
function unknownFieldIssues(unknown: readonly string[], input: Record<string, unknown>, allowed: string[], loc: (string | number)[]): Issue[] {
  const named = unknown.slice(0, UNKNOWN_NAMED);
  const one = (key: string): string => {
    const hint = key.length <= 64 ? closest(key, allowed) : undefined;
    return `${quote(key)}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ''}`;
  };
  const rest = unknown.length - named.length;
  return named.map((key, i) => ({
    loc: [...loc, key],
    msg:
      i === 0
        ? `${where(loc)}unknown field${unknown.length > 1 ? 's' : ''} ${named.map(one).join(', ')}${rest > 0 ? ` and ${rest} more` : ''}; allowed fields: ${allowed.join(', ')}`
        : `${where([...loc, key])}unknown field ${one(key)}`,
    type: 'extra_forbidden',
    ...echo(input[key]),
    ...(i === 0 && unknown.length > 1 ? { ctx: { unknown_fields: unknown.length } } : {}),
  }));
}

export function validateValue(v: unknown, t: FieldType, loc: (string | number)[]): { value: unknown; issues: Issue[] } {
  const fail = (msg: string, type: string, ctx?: Record<string, unknown>) => ({
    value: undefined,
    issues: [{ loc, msg: `${where(loc)}${msg}`, type, ...echo(v), ...(ctx ? { ctx } : {}) }],
  });
  switch (t.kind) {
    case 'string': {
      if (typeof v !== 'string') return fail(`expected a string, got ${describe(v)}`, 'string_type');
      if (t.enum && !t.enum.includes(v)) {
        return fail(`${quote(v)} is not allowed; expected one of ${t.enum.join(', ')}`, 'enum', { expected: t.enum });
      }
      if (t.minLength !== undefined && v.trim().length < t.minLength) {
        return fail(t.minLength === 1 ? `must not be empty` : `${quote(v)} is shorter than ${t.minLength} characters`, 'string_too_short', {
          min_length: t.minLength,
        });
      }
      if (t.maxLength !== undefined && v.length > t.maxLength) {
        return fail(`is ${v.length} characters long; at most ${t.maxLength} allowed`, 'string_too_long', { max_length: t.maxLength });
      }
      return { value: v, issues: [] };
    }
    case 'integer':
    case 'number': {
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        return fail(`expected ${t.kind === 'integer' ? 'an integer' : 'a number'} ${range(t)}, got ${describe(v)}`, `${t.kind === 'integer' ? 'int' : 'float'}_type`);
      }
      if (t.kind === 'integer' && !Number.isInteger(v)) return fail(`${v} is not an integer; expected an integer ${range(t)}`, 'int_from_float');
      if (v < t.min) return fail(`${v} is out of range; allowed ${range(t)}`, 'greater_than_equal', { ge: t.min, le: t.max });
      if (v > t.max) return fail(`${v} is out of range; allowed ${range(t)}`, 'less_than_equal', { ge: t.min, le: t.max });
      return { value: v, issues: [] };
    }
    case 'boolean':
      if (typeof v !== 'boolean') return fail(`expected true or false, got ${describe(v)}`, 'bool_type');
      return { value: v, issues: [] };
    case 'object':
      return validateObject(v, t.fields, loc);
    case 'array': {
      if (!Array.isArray(v)) return fail(`expected an array, got ${describe(v)}`, 'list_type');
      if (v.length > t.maxItems) return fail(`has ${v.length} items; at most ${t.maxItems} allowed`, 'too_long', { max_length: t.maxItems });
      if (t.minItems !== undefined && v.length < t.minItems) {
        return fail(`has ${v.length} items; ${t.minItems === t.maxItems ? 'exactly' : 'at least'} ${t.minItems} needed`, 'too_short', { min_length: t.minItems });
      }
      const out: unknown[] = [];
      const issues: Issue[] = [];
      v.forEach((item, i) => {
        const r = validateValue(item, t.items, [...loc, i]);
        issues.push(...r.issues);
        out.push(r.value);
      });
      return { value: out, issues };
    }
    case 'oneOf': {
      const option = t.options.find((o) => matchesKind(v, o));
      if (!option) return fail(`expected ${t.describe}, got ${describe(v)}`, 'union_tag_invalid');
      return validateValue(v, option, loc);
    }
  }
}

/** What a type allows, in words: `1 – 65`, `euler, heun`, `non-empty`… (for docs pages and `--help`). */
export function describeAllowed(t: FieldType): string {
  if (t.kind === 'string') {
    if (t.enum) return t.enum.join(', ');
    const limits = [t.minLength ? 'non-empty' : '', t.maxLength !== undefined ? `at most ${t.maxLength} characters` : ''];
    return limits.filter(Boolean).join(', ');
  }
  if (t.kind === 'integer' || t.kind === 'number') return range(t);
  if (t.kind === 'oneOf') return t.describe;
  if (t.kind === 'array') {
    const item = t.items.kind === 'object' ? `{${t.items.fields.map((f) => f.name).join(', ')}}` : describeAllowed(t.items) || t.items.kind;
    return `${t.minItems === t.maxItems ? 'exactly' : 'up to'} ${t.maxItems} × ${item}`;
  }
  return t.kind === 'boolean' ? 'true, false' : '';
}

/** The first issue as an error message, e.g. `strength: 1.5 is out of range; allowed 0.05 – 1`. */
export function fieldPath(loc: readonly (string | number)[]): string {
  return loc
    .slice(1)
    .map((p) => String(p))
    .join('.');
}

function matchesKind(v: unknown, t: FieldType): boolean {
  switch (t.kind) {
    case 'string':
      return typeof v === 'string';
    case 'integer':
    case 'number':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    case 'array':
      return Array.isArray(v);
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
    case 'oneOf':
      return t.options.some((o) => matchesKind(v, o));
  }
}

/** Longest string echoed back as an issue's `input`; longer ones are cut and end with "…". */
const ECHO_CHARS = 200;
/** Largest object or array (as JSON) echoed back as an issue's `input`; larger ones are left out. */
const ECHO_JSON_CHARS = 1000;

/** The issue's `input`, kept small: an error answer never grows with the size of what was sent. */
function echo(v: unknown): { input?: unknown } {
  if (typeof v === 'string') return { input: v.length > ECHO_CHARS ? `${v.slice(0, ECHO_CHARS)}…` : v };
  if (typeof v === 'object' && v !== null) {
    try {
      return JSON.stringify(v).length > ECHO_JSON_CHARS ? {} : { input: v };
    } catch {
      return {}; // too deep to serialise
    }
  }
  return { input: v };
}

function where(loc: readonly (string | number)[]): string {
  const p = fieldPath(loc);
  return p ? `${p}: ` : '';
}

function range(t: { min: number; max: number }): string {
  return `${fmt(t.min)} – ${fmt(t.max)}`;
}

function fmt(n: number): string {
  return n === Number.MAX_SAFE_INTEGER ? '2^53-1' : String(n);
}

function quote(v: string): string {
  return JSON.stringify(v.length > 80 ? `${v.slice(0, 77)}...` : v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing (empty body)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${quote(v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/** The known name within edit distance 2 of `key`, for "did you mean" hints. */
function closest(key: string, names: string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const n of names) {
    const d = editDistance(key.toLowerCase(), n);
    if (d < bestD) {
      bestD = d;
      best = n;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** A failed validation: the first issue is the headline, all issues go to `detail`. */
export class ValidationFailed extends AtelierError {
  readonly issues: Issue[];
  constructor(issues: Issue[]) {
    const first = issues[0]!;
    const code: ErrorCode = first.type === 'extra_forbidden' ? 'UNKNOWN_FIELD' : 'INVALID_INPUT';
    // the first unknown-field issue already names the other unknown fields: count only the other problems
    const others = issues.filter((x, i) => i > 0 && !(first.type === 'extra_forbidden' && x.type === 'extra_forbidden')).length;
    const more = others > 0 ? ` (and ${others} more problem${others > 1 ? 's' : ''}, see detail)` : '';
    super(code, `${first.msg}${more}`, { field: fieldPath(first.loc) || undefined });
    this.issues = issues;
  }
}

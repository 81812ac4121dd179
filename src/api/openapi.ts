/**
 * The OpenAPI 3.1 document and the /docs page, both generated from the request field table (contract/fields.ts).
 */
import { ENDPOINTS, ROUTE_IDS } from './endpoints.ts';
import { inputFields, OUTPUT_SCHEMA } from './schemas.ts';
import { objectSchema } from '../contract/json-schema.ts';
import { describeAllowed } from '../contract/validate.ts';

const ERROR_SCHEMA = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' }, field: { type: 'string' } },
    },
    detail: {
      type: 'array',
      items: {
        type: 'object',
        properties: { loc: { type: 'array', items: { type: ['string', 'integer'] } }, msg: { type: 'string' }, type: { type: 'string' } },
      },
    },
  },
};

export function openApiDocument(models: string[], defaultModel: string | undefined, serverUrl?: string): Record<string, unknown> {
  const schemas: Record<string, unknown> = { Output: OUTPUT_SCHEMA, Error: ERROR_SCHEMA };
  for (const e of ENDPOINTS) schemas[schemaName(e.id)] = objectSchema(inputFields(e.task, models, defaultModel));
  const errors = {
    '401': { description: 'missing or invalid API key', content: json('Error') },
    '413': { description: 'too large', content: json('Error') },
    '415': { description: 'unsupported image type', content: json('Error') },
    '422': { description: 'invalid input: the message names the field, the value and what is allowed', content: json('Error') },
    '429': { description: 'rate limit exceeded (see Retry-After)', content: json('Error') },
    '503': { description: 'no model loaded, or shutting down', content: json('Error') },
  };
  const paths: Record<string, unknown> = {};
  for (const [routeId, e] of ROUTE_IDS) {
    const body = { required: true, content: json(schemaName(e.id)) };
    const alias = routeId === e.id ? '' : ` (alias of ${e.id})`;
    paths[`/queue/${routeId}`] = {
      post: {
        summary: `${e.summary}: queue${alias}`,
        parameters: [{ name: 'webhook', in: 'query', required: false, schema: { type: 'string' }, description: 'URL to POST the signed result to (also accepted: fal_webhook)' }],
        requestBody: body,
        responses: { '200': { description: 'queued: request_id, status_url, response_url, cancel_url, queue_position' }, ...errors },
      },
    };
    paths[`/run/${routeId}`] = {
      post: {
        summary: `${e.summary}: wait for the result${alias}`,
        requestBody: body,
        responses: { '200': { description: 'the output', content: json('Output') }, ...errors },
      },
    };
  }
  const rid = [
    { name: 'owner', in: 'path', required: true, schema: { type: 'string' } },
    { name: 'app', in: 'path', required: true, schema: { type: 'string' } },
    { name: 'request_id', in: 'path', required: true, schema: { type: 'string' } },
  ];
  const logs = { name: 'logs', in: 'query', required: false, schema: { type: 'string', enum: ['0', '1'] } };
  paths['/queue/{owner}/{app}/requests/{request_id}/status'] = {
    get: { summary: 'status: IN_QUEUE + queue_position, IN_PROGRESS, COMPLETED (+ error)', parameters: [...rid, logs], responses: { '200': { description: 'status' } } },
  };
  paths['/queue/{owner}/{app}/requests/{request_id}/status/stream'] = {
    get: { summary: 'server-sent events of the status, closed after COMPLETED', parameters: [...rid, logs], responses: { '200': { description: 'text/event-stream' } } },
  };
  paths['/queue/{owner}/{app}/requests/{request_id}'] = {
    get: { summary: 'the result', parameters: rid, responses: { '200': { description: 'the output', content: json('Output') }, '409': { description: 'not finished yet' } } },
  };
  paths['/queue/{owner}/{app}/requests/{request_id}/cancel'] = {
    put: { summary: 'cancel: CANCELLATION_REQUESTED (202), ALREADY_COMPLETED (400), NOT_FOUND (404)', parameters: rid, responses: { '202': { description: 'cancellation requested' } } },
  };
  return {
    openapi: '3.1.0',
    info: { title: 'Atelier', version: '0.1.0', description: 'Self-hosted SDXL with a fal-compatible queue API' },
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
    components: {
      schemas,
      securitySchemes: { key: { type: 'apiKey', in: 'header', name: 'Authorization', description: '"Key <key>" or "Bearer <key>"' } },
    },
    security: [{ key: [] }, {}],
    paths,
  };
}

function schemaName(id: string): string {
  return id
    .split(/[/-]/)
    .map((s) => s.charAt(0).toUpperCase() + s.slice(1))
    .join('') + 'Input';
}

function json(schema: string) {
  return { 'application/json': { schema: { $ref: `#/components/schemas/${schema}` } } };
}

/** A plain HTML page listing every endpoint and its fields. */
export function docsPage(models: string[], defaultModel: string | undefined): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const sections = ENDPOINTS.map((e) => {
    const ids = [...ROUTE_IDS].filter(([, d]) => d === e).map(([id]) => `<code>${id}</code>`).join(', ');
    const rows = inputFields(e.task, models, defaultModel)
      .map(
        (f) =>
          `<tr><td><code>${f.name}</code>${f.extension ? ' <small>(extension)</small>' : ''}</td><td>${f.type.kind}</td><td>${esc(describeAllowed(f.type))}</td>` +
          `<td>${f.required ? '<b>required</b>' : f.default === undefined ? '—' : `<code>${esc(JSON.stringify(f.default))}</code>`}</td><td>${esc(f.description)}</td></tr>`,
      )
      .join('\n');
    return `<h2>${e.id}</h2><p>${esc(e.summary)}. Submit to <code>POST /queue/{id}</code> or <code>POST /run/{id}</code> with id ${ids}.</p>
<table><tr><th>field</th><th>type</th><th>allowed</th><th>default</th><th>meaning</th></tr>${rows}</table>`;
  }).join('\n');
  return `<!doctype html><html><head><meta charset="utf-8"><title>Atelier API</title>
<style>body{font:14px system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}code{background:#f4f4f4}</style></head><body>
<h1>Atelier API</h1><p>Machine-readable: <a href="/openapi.json">/openapi.json</a>. Unknown fields are rejected with a 422 naming them.
Status, result and cancel: <code>/queue/{owner}/{app}/requests/{request_id}[/status[/stream]|/cancel]</code>.</p>
${sections}</body></html>`;
}

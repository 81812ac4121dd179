/** JSON Schema (draft 2020-12, as OpenAPI 3.1 uses it) of the field table's types. */
import type { FieldSpec, FieldType } from './validate.ts';

export function jsonSchemaOf(t: FieldType): Record<string, unknown> {
  switch (t.kind) {
    case 'string':
      return {
        type: 'string',
        ...(t.enum ? { enum: [...t.enum] } : {}),
        ...(t.minLength !== undefined ? { minLength: t.minLength } : {}),
        ...(t.maxLength !== undefined ? { maxLength: t.maxLength } : {}),
        ...(t.format ? { format: t.format } : {}),
      };
    case 'integer':
    case 'number':
      return { type: t.kind, minimum: t.min, maximum: t.max };
    case 'boolean':
      return { type: 'boolean' };
    case 'array':
      return { type: 'array', items: jsonSchemaOf(t.items), maxItems: t.maxItems, ...(t.minItems !== undefined ? { minItems: t.minItems } : {}) };
    case 'object':
      return objectSchema(t.fields, t.title);
    case 'oneOf':
      return { oneOf: t.options.map(jsonSchemaOf), description: `${t.describe}` };
  }
}

export function objectSchema(fields: readonly FieldSpec[], title?: string): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (const f of fields) {
    properties[f.name] = {
      ...jsonSchemaOf(f.type),
      description: f.description,
      ...(f.default !== undefined ? { default: f.default } : {}),
      ...(f.extension ? { 'x-atelier-extension': true } : {}),
      ...('cli' in f && f.cli ? { 'x-atelier-cli-flag': `--${String(f.cli)}` } : {}),
    };
  }
  const required = fields.filter((f) => f.required).map((f) => f.name);
  return {
    type: 'object',
    ...(title ? { title } : {}),
    properties,
    ...(required.length ? { required } : {}),
    additionalProperties: false,
  };
}

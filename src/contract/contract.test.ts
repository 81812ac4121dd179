import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkInputs, CROSS_FIELD_RULES } from './check-inputs.ts';
import { ENDPOINTS, TASKS } from './endpoints.ts';
import { fieldsFor, mapFields, MAX_PROMPT_CHARS, REQUEST_FIELDS } from './fields.ts';
import { objectSchema } from './json-schema.ts';
import { parseOptions } from './options.ts';
import { ENGINE_OPTIONS, engineSettingsFrom } from './settings.ts';
import { DEVICES, IMAGE_SIZE_PRESETS, SAMPLERS, TIMESTEP_SPACINGS } from './tables.ts';
import { validateObject } from './validate.ts';

test('one table of request fields: names unique, every field taken by some endpoint, CLI flags unique', () => {
  const names = REQUEST_FIELDS.map((f) => f.name);
  assert.equal(new Set(names).size, names.length);
  for (const f of REQUEST_FIELDS) assert.ok(f.tasks.length > 0 && f.tasks.every((t) => TASKS.includes(t)), f.name);
  const flags = REQUEST_FIELDS.flatMap((f) => (f.cli ? [f.cli] : []));
  assert.equal(new Set(flags).size, flags.length);
  for (const e of ENDPOINTS) assert.ok(fieldsFor(e.task).some((f) => f.name === 'prompt'), e.id);
  assert.deepEqual(
    fieldsFor('image-to-image').map((f) => f.name).slice(0, 7),
    ['prompt', 'image_url', 'strength', 'negative_prompt', 'image_size', 'preserve_aspect_ratio', 'crop_output'],
  );
  assert.ok(!fieldsFor('text-to-image').some((f) => f.name === 'strength' || f.name === 'image_url'));
});

test('the frozen tables are the ones the fields allow', () => {
  const byName = new Map(REQUEST_FIELDS.map((f) => [f.name, f]));
  assert.deepEqual(byName.get('sampler')!.type, { kind: 'string', enum: SAMPLERS });
  assert.deepEqual(byName.get('timestep_spacing')!.type, { kind: 'string', enum: TIMESTEP_SPACINGS });
  const size = objectSchema(fieldsFor('text-to-image')).properties as Record<string, { oneOf: { enum?: string[] }[] }>;
  assert.deepEqual(size.image_size!.oneOf[0]!.enum, Object.keys(IMAGE_SIZE_PRESETS));
  assert.ok(Object.isFrozen(SAMPLERS) && Object.isFrozen(IMAGE_SIZE_PRESETS.square));
  assert.deepEqual([...DEVICES], ['cpu', 'cuda', 'tensorrt', 'webgpu']);
});

test('the model field takes the served models, and its default', () => {
  const model = fieldsFor('text-to-image', { names: ['a', 'b'], default: 'b' }).find((f) => f.name === 'model')!;
  assert.deepEqual([model.type, model.default], [{ kind: 'string', enum: ['a', 'b'] }, 'b']);
  const { issues } = validateObject({ prompt: 'x', model: 'c' }, fieldsFor('text-to-image', { names: ['a'] }));
  assert.match(issues[0]!.msg, /model: "c" is not allowed; expected one of a/);
});

test('mapFields copies the one-to-one fields into the request and the delivery options', () => {
  const fields = fieldsFor('image-to-image', { names: ['m'] });
  const { value } = validateObject({ prompt: 'p', image_url: 'data:,', num_inference_steps: 9, sync_mode: true, model: 'm' }, fields);
  const { request, output } = mapFields(fields, value);
  assert.deepEqual(request, { prompt: 'p', strength: 0.95, steps: 9, guidanceScale: 7.5, numImages: 1, model: 'm', sampler: 'euler', timestepSpacing: 'leading', guidanceRescale: 0, cropsCoordsTopLeft: [0, 0] });
  assert.deepEqual(output, { expandPrompt: false, format: 'jpeg', enableSafetyChecker: true, syncMode: true });
});

test('checkInputs: lcm steps and tokens bound twice; acceptable inputs give nothing', () => {
  assert.equal(CROSS_FIELD_RULES.length, 2);
  assert.deepEqual(checkInputs({ sampler: 'lcm', num_inference_steps: 50 }), []);
  assert.deepEqual(checkInputs({ sampler: 'euler', num_inference_steps: 60 }), []);
  const [lcm] = checkInputs({ sampler: 'lcm', num_inference_steps: 51 });
  assert.deepEqual([lcm!.loc, lcm!.ctx], [['body', 'num_inference_steps'], { ge: 1, le: 50, sampler: 'lcm' }]);
  assert.deepEqual(checkInputs({ embeddings: [{ tokens: ['<a>'] }, { tokens: ['<b>'] }] }), []);
  const [dup] = checkInputs({ embeddings: [{ tokens: ['<a>', '<a>'] }] });
  assert.match(dup!.msg, /embeddings\.0\.tokens\.1: "<a>" is already bound earlier in the same list/);
});

test('engine settings: one parser, flags over environment, defaults, errors naming flag and variable', () => {
  const s = engineSettingsFrom(parseOptions(['--model', 'm/x.safetensors', '--quantize', 'int8-full'], ENGINE_OPTIONS, { ATELIER_THREADS: '3', ATELIER_QUANTIZE: 'int8' }), '/w');
  assert.deepEqual(s, {
    models: [{ name: 'x', path: '/w/m/x.safetensors' }],
    dataDir: '/w/data',
    threads: 3,
    quantize: 'int8-full',
    device: 'cpu',
    weights: 'fp32',
    oneShot: false,
    maxLoadedModels: 1,
  });
  const c = engineSettingsFrom(parseOptions(['--model', 'a.safetensors', '--config', 'cfg'], ENGINE_OPTIONS), '/w', { oneShot: true });
  assert.deepEqual([c.models[0]!.config, c.oneShot], ['/w/cfg', true]);
  assert.throws(() => engineSettingsFrom(parseOptions(['--config', 'cfg'], ENGINE_OPTIONS), '/w'), /--config \/ ATELIER_MODEL_CONFIG: "cfg" is not valid; expected exactly one --model/);
  assert.throws(() => parseOptions(['--threads', '0'], ENGINE_OPTIONS), /--threads \/ ATELIER_THREADS: "0" is not valid; expected an integer 1 – 1024/);
  assert.throws(() => parseOptions([], ENGINE_OPTIONS, { ATELIER_DEVICE: 'tpu' }), /--device \/ ATELIER_DEVICE: "tpu" is not valid; expected one of cpu, cuda, tensorrt, webgpu/);
});

test('arrays with a fixed length: too short and too long are named', () => {
  const fields = [{ name: 'xy', type: { kind: 'array' as const, items: { kind: 'integer' as const, min: 0, max: 9 }, minItems: 2, maxItems: 2 }, description: '' }];
  assert.deepEqual(validateObject({ xy: [1, 2] }, fields).issues, []);
  assert.match(validateObject({ xy: [1] }, fields).issues[0]!.msg, /xy: has 1 items; exactly 2 needed/);
  assert.match(validateObject({ xy: [1, 2, 3] }, fields).issues[0]!.msg, /xy: has 3 items; at most 2 allowed/);
  assert.deepEqual(objectSchema(fields).properties, { xy: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 9 }, maxItems: 2, minItems: 2, description: '' } });
});

test('prompt and negative_prompt are bounded: the issue names the field and the limit', () => {
  const fields = fieldsFor('text-to-image', { names: ['m'] });
  const long = 'a'.repeat(MAX_PROMPT_CHARS + 1);
  assert.deepEqual(validateObject({ prompt: 'x'.repeat(MAX_PROMPT_CHARS) }, fields).issues, []);
  const [p] = validateObject({ prompt: long }, fields).issues;
  assert.deepEqual([p!.loc, p!.type, p!.ctx], [['body', 'prompt'], 'string_too_long', { max_length: MAX_PROMPT_CHARS }]);
  assert.equal(p!.msg, `prompt: is ${MAX_PROMPT_CHARS + 1} characters long; at most ${MAX_PROMPT_CHARS} allowed`);
  const [n] = validateObject({ prompt: 'x', negative_prompt: long }, fields).issues;
  assert.deepEqual([n!.loc, n!.type], [['body', 'negative_prompt'], 'string_too_long']);
  const props = objectSchema(fields).properties as Record<string, { maxLength?: number }>;
  assert.deepEqual([props.prompt!.maxLength, props.negative_prompt!.maxLength], [MAX_PROMPT_CHARS, MAX_PROMPT_CHARS]);
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { helpText, loadConfig, OPTIONS } from './config.ts';
import { validateObject, type FieldSpec } from '../contract/validate.ts';

describe('configuration', () => {
  it('embedded defaults: port 8080 on 127.0.0.1, ./data, no keys, no limit', () => {
    const c = loadConfig([], {}, '/srv/app');
    assert.equal(c.port, 8080);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.engine.dataDir, '/srv/app/data');
    assert.deepEqual([c.engine.models, c.apiKeys, c.allowNetworks, c.rateLimit], [[], [], [], undefined]);
    assert.equal(c.maxPixels, 4096 * 4096);
    assert.equal(c.engine.weights, 'fp32');
    assert.equal(loadConfig([], { ATELIER_WEIGHTS: 'fp16' }).engine.weights, 'fp16');
    assert.equal(loadConfig(['--weights', 'fp32'], { ATELIER_WEIGHTS: 'fp16' }).engine.weights, 'fp32');
    assert.equal(c.engine.vaeQuantize, undefined);
    assert.equal(loadConfig([], { ATELIER_VAE_QUANTIZE: 'int8' }).engine.vaeQuantize, 'int8');
    assert.equal(loadConfig(['--vae-quantize', 'off'], { ATELIER_VAE_QUANTIZE: 'int8' }).engine.vaeQuantize, undefined);
    assert.equal(loadConfig(['--quantize', 'int8-full'], {}).engine.quantize, 'int8-full');
  });

  it('environment variables, overridden by flags; repeatable flags and comma lists', () => {
    const env = { PORT: '9000', HOST: '0.0.0.0', ATELIER_DATA_DIR: '/var/atelier', ATELIER_MODEL: '/m/a.safetensors,/m/b', ATELIER_API_KEYS: 'k1, k2' };
    const c = loadConfig(['--port=9100', '--model', '/m/c.safetensors', '--model', 'rel/d', '--rate-limit', '5/s'], env, '/w');
    assert.equal(c.port, 9100);
    assert.equal(c.host, '0.0.0.0');
    assert.equal(c.engine.dataDir, '/var/atelier');
    assert.deepEqual(c.engine.models, [
      { name: 'c', path: '/m/c.safetensors' },
      { name: 'd', path: '/w/rel/d' },
    ]);
    assert.deepEqual(c.apiKeys, ['k1', 'k2']);
    assert.equal(c.rateLimit?.perSecond, 5);
    const fromEnv = loadConfig([], env, '/w');
    assert.deepEqual(fromEnv.engine.models.map((m) => m.name), ['a', 'b']);
  });

  it('bad values name the flag, the variable, the value and what is allowed', () => {
    assert.throws(() => loadConfig(['--port', 'eighty'], {}), /--port \/ PORT: "eighty" is not valid; expected an integer 0 – 65535/);
    assert.throws(() => loadConfig(['--prot', '1'], {}), /"--prot" is not valid; expected one of --port/);
    assert.throws(() => loadConfig([], { ATELIER_PUBLIC_URL: 'example.com' }), /ATELIER_PUBLIC_URL: "example.com"/);
    assert.throws(() => loadConfig(['--model'], {}), /a value after the flag/);
    assert.throws(() => loadConfig(['--weights', 'fp8'], {}), /--weights \/ ATELIER_WEIGHTS: "fp8" is not valid; expected one of fp32, fp16/);
    assert.throws(() => loadConfig(['--vae-quantize', 'int4'], {}), /--vae-quantize \/ ATELIER_VAE_QUANTIZE: "int4" is not valid; expected one of int8, off/);
    assert.throws(() => loadConfig(['--quantize', 'int4'], {}), /--quantize \/ ATELIER_QUANTIZE: "int4" is not valid; expected one of int8, int8-block, int8-full, off/);
  });

  it('--help lists every flag with its environment variable', () => {
    const text = helpText();
    for (const o of OPTIONS) assert.ok(text.includes(`--${o.flag}`) && text.includes(o.env ?? ''), o.flag);
  });
});

describe('validator', () => {
  const fields: FieldSpec[] = [
    { name: 'n', type: { kind: 'integer', min: 1, max: 3 }, default: 2, description: '' },
    {
      name: 'size',
      type: {
        kind: 'oneOf',
        describe: 'a preset or {w}',
        options: [
          { kind: 'string', enum: ['a', 'b'] },
          { kind: 'object', fields: [{ name: 'w', type: { kind: 'integer', min: 1, max: 9 }, required: true, description: '' }] },
        ],
      },
      description: '',
    },
  ];

  it('null and absent take the default; integers may be written 3.0', () => {
    assert.deepEqual(validateObject({ n: null }, fields).value, { n: 2 });
    assert.deepEqual(validateObject({ n: 3.0 }, fields).value, { n: 3 });
    assert.equal(validateObject({ n: 2.5 }, fields).issues[0]!.type, 'int_from_float');
  });

  it('oneOf picks the option by JSON type and reports inside it', () => {
    assert.deepEqual(validateObject({ size: { w: 4 } }, fields).issues, []);
    assert.match(validateObject({ size: 'c' }, fields).issues[0]!.msg, /size: "c" is not allowed; expected one of a, b/);
    assert.match(validateObject({ size: { w: 4, h: 1 } }, fields).issues[0]!.msg, /unknown field "h"/);
    assert.deepEqual(validateObject({ size: { w: 4, h: 1 } }, fields).issues[0]!.loc, ['body', 'size', 'h']);
    assert.match(validateObject({ size: 5 }, fields).issues[0]!.msg, /size: expected a preset or \{w\}, got number 5/);
  });

  it('a body that is not an object', () => {
    assert.match(validateObject([1], fields).issues[0]!.msg, /expected a JSON object, got an array/);
    assert.match(validateObject(undefined, fields).issues[0]!.msg, /got nothing/);
  });

  it('admin keys, signed output URL validity, the failed-key limit', () => {
    const d = loadConfig([], {});
    assert.deepEqual([d.adminKeys, d.outputUrlTtlSeconds, d.authFailureLimit.burst, d.authFailureLimit.perSecond], [[], 7 * 86400, 10, 10 / 60]);
    const c = loadConfig(['--admin-key', 'r1', '--output-url-ttl', '12h'], { ATELIER_ADMIN_KEYS: 'x', ATELIER_AUTH_FAILURE_LIMIT: '5/h' });
    assert.deepEqual([c.adminKeys, c.outputUrlTtlSeconds, c.authFailureLimit.burst, c.authFailureLimit.perSecond], [['r1'], 12 * 3600, 5, 5 / 3600]);
    assert.equal(loadConfig([], { ATELIER_OUTPUT_URL_TTL: '3600' }).outputUrlTtlSeconds, 3600);
    assert.throws(() => loadConfig(['--output-url-ttl', '10s'], {}), /--output-url-ttl \/ ATELIER_OUTPUT_URL_TTL: "10s" is not valid; expected a duration/);
    assert.throws(() => loadConfig([], { ATELIER_AUTH_FAILURE_LIMIT: 'many' }), /--auth-failure-limit \/ ATELIER_AUTH_FAILURE_LIMIT: "many" is not valid/);
  });
});

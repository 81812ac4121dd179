import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DerivedCache, derivedFile, storedShape } from './derived-cache.ts';
import type { WriteEntry } from './safetensors.ts';

const entries = (shape: number[]): WriteEntry[] => [{ name: 'w', dtype: 'F32', shape, data: () => new Float32Array(shape[0] * shape[1]).fill(1) }];

test('derived cache: written once; a different stamp, fingerprint or tensor set is rebuilt; a corrupt file too', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atelier-derived-'));
  const key = { cacheDir: path.join(dir, 'cache'), fingerprint: 'fp1', source: path.join(dir, 'model') };
  const cache = new DerivedCache(key);
  assert.equal(cache.root, path.join(dir, 'cache', 'fp1'));
  assert.equal(cache.file('x.safetensors'), derivedFile(key.cacheDir, 'fp1', 'x.safetensors'));
  const stamp = { atelier_test_version: '1' };
  assert.equal((await cache.ensureTensors('x.safetensors', entries([2, 3]), stamp)).created, true);
  assert.deepEqual(JSON.parse(await readFile(cache.file('source.json'), 'utf8')), { source: key.source });
  assert.equal((await cache.ensureTensors('x.safetensors', entries([2, 3]), stamp)).created, false);
  assert.equal(await cache.openTensors('x.safetensors', entries([2, 3]), { atelier_test_version: '2' }), null, 'another format version');
  assert.equal(await cache.openTensors('x.safetensors', entries([3, 2]), stamp), null, 'another stored shape');
  assert.equal(await cache.openTensors('x.safetensors', [...entries([2, 3]), { name: 'b', dtype: 'F32', shape: [3] }], stamp), null, 'a missing tensor');
  assert.equal(await new DerivedCache({ ...key, fingerprint: 'fp0' }).openTensors('x.safetensors', entries([2, 3]), stamp), null);
  await writeFile(cache.file('x.safetensors'), 'garbage');
  assert.equal((await cache.ensureTensors('x.safetensors', entries([2, 3]), stamp)).created, true);
  await rm(dir, { recursive: true });
});

test('derived cache: JSON files carry version and fingerprint; a write removes older fingerprints of the same source only', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atelier-derived-'));
  const cacheDir = path.join(dir, 'cache');
  const source = path.join(dir, 'model');
  const old = new DerivedCache({ cacheDir, fingerprint: 'old', source });
  await old.writeJson('a.json', 1, { x: 1 });
  const other = new DerivedCache({ cacheDir, fingerprint: 'other', source: path.join(dir, 'elsewhere') });
  await other.writeJson('a.json', 1, { x: 2 });
  await mkdir(path.join(cacheDir, 'unrelated'));
  const cache = new DerivedCache({ cacheDir, fingerprint: 'new', source });
  assert.equal(await cache.readJson('a.json', 1), null, 'absent');
  await cache.writeJson('a.json', 3, { x: 3 });
  assert.deepEqual(await cache.readJson('a.json', 3), { version: 3, fingerprint: 'new', x: 3 });
  assert.equal(await cache.readJson('a.json', 2), null, 'another version');
  assert.ok(!existsSync(old.root), 'the stale folder of the same source is gone');
  assert.deepEqual(await other.readJson('a.json', 1), { version: 1, fingerprint: 'other', x: 2 });
  assert.ok(existsSync(path.join(cacheDir, 'unrelated')));
  await writeFile(cache.file('a.json'), '{ not json');
  assert.equal(await cache.readJson('a.json', 3), null, 'corrupt');
  assert.deepEqual(storedShape({ file: '', dtype: 'F32', shape: [2, 3], byteOffset: 0, byteLength: 24, transposed: true }), [3, 2]);
  await rm(dir, { recursive: true });
});

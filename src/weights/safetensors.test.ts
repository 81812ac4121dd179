import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { oracleDir } from '../paths.ts';
import { AtelierError } from '../contract/errors.ts';
import { readSafetensorsHeader, readTensorF32, readTensorRaw, tensorRefOf, writeSafetensors } from './safetensors.ts';

async function tmp(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'atelier-st-'));
}

/** A hand-made file: 8-byte length + header JSON + data bytes. */
function rawFile(header: unknown, data = Buffer.alloc(0), lengthOverride?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

async function expectInvalid(bytes: Buffer, pattern: RegExp): Promise<void> {
  const dir = await tmp();
  const file = path.join(dir, 'bad.safetensors');
  await writeFile(file, bytes);
  await assert.rejects(readSafetensorsHeader(file), (e: unknown) => {
    assert.ok(e instanceof AtelierError, String(e));
    assert.equal(e.code, 'SAFETENSORS_INVALID');
    assert.match(e.message, pattern);
    assert.ok(e.message.includes(file), 'message names the file');
    return true;
  });
  await rm(dir, { recursive: true });
}

test('round trip: F32, F16, BF16, I64, lazy entries, metadata, 8-byte aligned header', async () => {
  const dir = await tmp();
  const file = path.join(dir, 'rt.safetensors');
  const a = Float32Array.from({ length: 6 }, (_, i) => i * 0.5 - 1);
  await writeSafetensors(file, [
    { name: 'a', dtype: 'F32', shape: [2, 3], data: a },
    { name: 'b', dtype: 'F16', shape: [6], data: () => a },
    { name: 'c', dtype: 'BF16', shape: [3, 2], data: async () => a },
    { name: 'ids', dtype: 'I64', shape: [1, 3], data: BigInt64Array.from([0n, 1n, 76n]) },
    { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  ], { format: 'pt', note: 'hi' });
  const h = await readSafetensorsHeader(file);
  assert.equal(h.dataStart % 8, 0);
  assert.deepEqual(h.metadata, { format: 'pt', note: 'hi' });
  assert.deepEqual([...h.tensors.keys()], ['a', 'b', 'c', 'ids', 'empty']);
  assert.equal(h.tensors.get('a')!.byteOffset, h.dataStart);
  for (const n of ['a', 'b', 'c']) assert.deepEqual(Array.from(await readTensorF32(tensorRefOf(h, n))), Array.from(a));
  assert.deepEqual(Array.from(await readTensorF32(tensorRefOf(h, 'ids'))), [0, 1, 76]);
  assert.equal((await readTensorRaw(tensorRefOf(h, 'b'))).readUInt16LE(0), 0xbc00); // -1 in fp16
  const bytes = await readFile(file);
  assert.equal(bytes.length, h.dataStart + 24 + 12 + 12 + 24);
  await rm(dir, { recursive: true });
});

test('hostile files give SAFETENSORS_INVALID with the problem named', async () => {
  const ok = { t: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  await expectInvalid(Buffer.from([1, 2, 3]), /truncated/);
  await expectInvalid(rawFile(ok, Buffer.alloc(8), 1n << 62n), /oversized header/);
  await expectInvalid(rawFile(ok, Buffer.alloc(8), 5000n), /truncated: header length 5000/);
  await expectInvalid(rawFile('{"t": [1, 2', Buffer.alloc(8)), /not UTF-8 JSON/);
  await expectInvalid(rawFile('[1,2]'), /not a JSON object/);
  await expectInvalid(rawFile({ t: { dtype: 'F8_E9', shape: [2], data_offsets: [0, 2] } }, Buffer.alloc(8)), /unknown dtype "F8_E9" for tensor "t"/);
  await expectInvalid(rawFile({ t: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, Buffer.alloc(4)), /offsets out of range/);
  await expectInvalid(rawFile({ t: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, Buffer.alloc(8)), /bad shape \[-2\]/);
  await expectInvalid(rawFile({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, Buffer.alloc(12)), /needs 12/);
  await expectInvalid(rawFile({
    t: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    u: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
  }, Buffer.alloc(12)), /overlap: tensor "u"/);
  await expectInvalid(rawFile({ __metadata__: { a: 1 } }), /__metadata__ value of "a"/);
  await expectInvalid(rawFile({ t: { dtype: 'F32', shape: [2], data_offsets: [8] } }, Buffer.alloc(8)), /bad data_offsets/);
  await expectInvalid(Buffer.concat([rawFile('{}').subarray(0, 8), Buffer.from([0xff, 0xfe])]).fill(2, 0, 1).fill(0, 1, 8), /not UTF-8/);
});

test('reads the oracle single file header without reading the data (1143 tensors)', async () => {
  const h = await readSafetensorsHeader(path.join(oracleDir(), 'tiny-sdxl.safetensors'));
  assert.equal(h.tensors.size, 1143);
  const t = h.tensors.get('conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight')!;
  assert.deepEqual(t.shape, [192, 64]);
  assert.equal(t.dtype, 'F32');
  const v = await readTensorF32(tensorRefOf(h, 'model.diffusion_model.out.0.weight'));
  assert.equal(v.length, 16);
  assert.ok(v.every(Number.isFinite));
});

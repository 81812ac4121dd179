/**
 * Full-size SDXL UNet (random fp32 weights) with and without int8 Linear layers: seconds per call and peak RSS at
 * 64×64 latents (512² images), batch 2, 77 tokens, threads 2; and the quantised output's error against fp32.
 * Random weights give indicative, probably pessimistic fidelity (no trained structure, no real activation
 * statistics). Each case runs in its own child process; the quantised cache is written once under --cache.
 * Weights: the UNet-only file written by bench/unet-forward.ts (default /tmp/atelier-full-unet/...).
 *
 *   node --import tsx bench/quant-unet.ts [--cases fp32,int8,int8-block] [--runs 2] [--size 64] [--batch 2]
 *        [--file <unet.safetensors>] [--cache /tmp/atelier-quant-cache] [--opt all] [--prepack on]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { QuantScheme } from '../src/contract/tables.ts';
import { ensureQuantized } from '../src/quant/quantized-weights.ts';
import { quantizedLinearLayers } from '../src/quant/quantized-linear.ts';
import { UNet } from '../src/networks/unet.ts';
import { unetConfigFromShapes } from '../src/weights/config-from-shapes.ts';
import { readSafetensorsHeader, tensorRefOf } from '../src/weights/safetensors.ts';
import type { SdxlModel, TensorRef } from '../src/weights/types.ts';
import { unetInputs } from './inputs.ts';

const self = fileURLToPath(import.meta.url);
const repoRoot = path.resolve(path.dirname(self), '..');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const file = arg('file', '/tmp/atelier-full-unet/unet/diffusion_pytorch_model.safetensors');
const cacheDir = arg('cache', '/tmp/atelier-quant-cache');
const refOut = path.join(cacheDir, 'fp32-out.bin');

async function child(kind: 'fp32' | QuantScheme): Promise<void> {
  const runs = Number(arg('runs', '2'));
  const size = Number(arg('size', '64'));
  const batch = Number(arg('batch', '2'));
  const header = await readSafetensorsHeader(file);
  const weights = new Map<string, TensorRef>([...header.tensors.keys()].map((k) => [k, tensorRefOf(header, k)]));
  const config = unetConfigFromShapes(weights, { pooledDim: 1280 });
  let quantS = 0;
  let unetWeights: Map<string, TensorRef> = weights;
  if (kind !== 'fp32') {
    const t0 = performance.now();
    const st = fs.statSync(file);
    const q = await ensureQuantized(weights, { scheme: kind, cacheDir, fingerprint: `bench-${st.size}-${Math.round(st.mtimeMs)}`, source: file, component: 'unet' });
    quantS = q.created ? (performance.now() - t0) / 1000 : 0;
    unetWeights = q;
  }
  const model = { weights: { unet: unetWeights }, config: { unet: config } } as unknown as SdxlModel;
  const t1 = performance.now();
  const unet = await UNet.create(model, { layers: quantizedLinearLayers(unetWeights), threads: 2, optimization: arg('opt', 'all') as 'all', prepacking: arg('prepack', 'on') === 'on' });
  const createS = (performance.now() - t1) / 1000;
  const inputs = unetInputs(config, size, size, batch);
  const times: number[] = [];
  const loads: number[] = [];
  let out: Float32Array = new Float32Array(0);
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    out = await unet.run(inputs);
    times.push((performance.now() - t) / 1000);
    loads.push(Math.round(os.loadavg()[0] * 100) / 100); // 1-min load after the run: >2 means other work shared the 2 cores
  }
  await unet.release();
  const stats: Record<string, number> = {};
  if (kind === 'fp32') fs.writeFileSync(refOut, out);
  else if (fs.existsSync(refOut)) {
    const b = fs.readFileSync(refOut);
    const ref = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    let mean = 0;
    for (const v of ref) mean += v;
    mean /= ref.length;
    let v2 = 0;
    let e2 = 0;
    let maxE = 0;
    let dot = 0;
    let n1 = 0;
    let n2 = 0;
    for (let i = 0; i < ref.length; i++) {
      const d = out[i] - ref[i];
      v2 += (ref[i] - mean) ** 2;
      e2 += d * d;
      maxE = Math.max(maxE, Math.abs(d));
      dot += out[i] * ref[i];
      n1 += out[i] ** 2;
      n2 += ref[i] ** 2;
    }
    const std = Math.sqrt(v2 / ref.length);
    Object.assign(stats, { std, maxErrOverStd: maxE / std, rmsErrOverStd: Math.sqrt(e2 / ref.length) / std, cosine: dot / Math.sqrt(n1 * n2) });
  }
  const result = { kind, quantS, createS, runS: times, loadAfterRun: loads, finite: out.every(Number.isFinite), peakRssGB: process.resourceUsage().maxRSS / 1024 / 1024, ...stats };
  console.log(`RESULT ${JSON.stringify(result)}`);
}

async function main(): Promise<void> {
  const c = arg('child', '');
  if (c) return child(c as 'fp32' | QuantScheme);
  fs.mkdirSync(cacheDir, { recursive: true });
  const pass = ['runs', 'size', 'batch', 'file', 'cache', 'opt', 'prepack'].flatMap((k) => (process.argv.includes(`--${k}`) ? [`--${k}`, arg(k, '')] : []));
  for (const kind of arg('cases', 'fp32,int8,int8-block').split(',')) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', kind, ...pass], { cwd: repoRoot, encoding: 'utf8', maxBuffer: 1 << 24 });
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    console.log(line ? line.slice(7) : `${kind}: failed (exit ${r.status ?? r.signal})\n${r.stderr.slice(-3000)}`);
  }
}

await main();

/**
 * UNet benchmark on the full-size SDXL-base UNet architecture with random fp32 weights: session creation and
 * forward passes at 64×64 latents, batch 2, 77 tokens, onnxruntime optimisation 'all' vs 'extended' × weight
 * prepacking on/off. Each case runs in its own child process so that its peak RSS is its own.
 * Weights: `makeTestModel({ size: 'full' })` from src/weights/test-model.ts into $ATELIER_FULL_DIR (default
 * /tmp/atelier-full) when that module exists; otherwise a UNet-only diffusers file generated here
 * ($ATELIER_FULL_DIR-unet). Never inside the repository. Reference: diffusers on PyTorch CPU, same call: 25.2 s, 15.6 GB.
 *
 *   node --import tsx bench/unet-forward.ts [--threads 2] [--runs 2] [--size 64] [--batch 2]
 *        [--cases all:on,all:off,extended:on,extended:off]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UNet } from '../src/networks/unet.ts';
import { unetConfigFromShapes } from '../src/weights/config-from-shapes.ts';
import { loadModel } from '../src/weights/load-model.ts';
import { readSafetensorsHeader, tensorRefOf, writeSafetensors, type WriteEntry } from '../src/weights/safetensors.ts';
import type { SdxlModel, TensorRef } from '../src/weights/types.ts';
import { unetInputs } from './inputs.ts';
import { uniformFill } from './random.ts';

const self = fileURLToPath(import.meta.url);
const repoRoot = path.resolve(path.dirname(self), '..');
const fullDir = process.env.ATELIER_FULL_DIR ?? '/tmp/atelier-full';
const unetOnlyFile = path.join(`${fullDir}-unet`, 'unet', 'diffusion_pytorch_model.safetensors');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

type Shape = number[];

/** Every tensor of SDXL base's UNet2DConditionModel, diffusers names (same skip bookkeeping as the graph). */
function sdxlUNetShapes(): [string, Shape][] {
  const out: [string, Shape][] = [];
  const conv = (n: string, o: number, i: number, k: number) => out.push([`${n}.weight`, [o, i, k, k]], [`${n}.bias`, [o]]);
  const norm = (n: string, c: number) => out.push([`${n}.weight`, [c]], [`${n}.bias`, [c]]);
  const lin = (n: string, o: number, i: number, bias = true) => out.push([`${n}.weight`, [o, i]], ...(bias ? [[`${n}.bias`, [o]] as [string, Shape]] : []));
  const T = 1280;
  const cross = 2048;
  const resnet = (p: string, i: number, o: number) => {
    norm(`${p}.norm1`, i);
    conv(`${p}.conv1`, o, i, 3);
    lin(`${p}.time_emb_proj`, o, T);
    norm(`${p}.norm2`, o);
    conv(`${p}.conv2`, o, o, 3);
    if (i !== o) conv(`${p}.conv_shortcut`, o, i, 1);
  };
  const transformer = (p: string, c: number, depth: number) => {
    norm(`${p}.norm`, c);
    lin(`${p}.proj_in`, c, c);
    for (let d = 0; d < depth; d++) {
      const b = `${p}.transformer_blocks.${d}`;
      for (const a of ['attn1', 'attn2']) {
        const kv = a === 'attn1' ? c : cross;
        lin(`${b}.${a}.to_q`, c, c, false);
        lin(`${b}.${a}.to_k`, c, kv, false);
        lin(`${b}.${a}.to_v`, c, kv, false);
        lin(`${b}.${a}.to_out.0`, c, c);
      }
      for (const n of ['norm1', 'norm2', 'norm3']) norm(`${b}.${n}`, c);
      lin(`${b}.ff.net.0.proj`, 8 * c, c);
      lin(`${b}.ff.net.2`, c, 4 * c);
    }
    lin(`${p}.proj_out`, c, c);
  };
  const ch = [320, 640, 1280];
  const depth = [0, 2, 10];
  conv('conv_in', ch[0], 4, 3);
  lin('time_embedding.linear_1', T, ch[0]);
  lin('time_embedding.linear_2', T, T);
  lin('add_embedding.linear_1', T, 2816);
  lin('add_embedding.linear_2', T, T);
  const skips = [ch[0]];
  let c = ch[0];
  for (let l = 0; l < 3; l++) {
    for (let i = 0; i < 2; i++) {
      resnet(`down_blocks.${l}.resnets.${i}`, c, ch[l]);
      c = ch[l];
      if (depth[l] > 0) transformer(`down_blocks.${l}.attentions.${i}`, c, depth[l]);
      skips.push(c);
    }
    if (l < 2) {
      conv(`down_blocks.${l}.downsamplers.0.conv`, c, c, 3);
      skips.push(c);
    }
  }
  resnet('mid_block.resnets.0', c, c);
  transformer('mid_block.attentions.0', c, 10);
  resnet('mid_block.resnets.1', c, c);
  for (let j = 0; j < 3; j++) {
    const l = 2 - j;
    for (let i = 0; i < 3; i++) {
      resnet(`up_blocks.${j}.resnets.${i}`, c + skips.pop()!, ch[l]);
      c = ch[l];
      if (depth[l] > 0) transformer(`up_blocks.${j}.attentions.${i}`, c, depth[l]);
    }
    if (j < 2) conv(`up_blocks.${j}.upsamplers.0.conv`, c, c, 3);
  }
  norm('conv_norm_out', c);
  conv('conv_out', 4, c, 3);
  return out;
}

/** Random weights scaled like a trained net (activations stay O(1): no overflow, no denormals). */
async function writeUNetOnly(file: string): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const entries: WriteEntry[] = sdxlUNetShapes().map(([name, shape], k) => ({
    name,
    dtype: 'F32',
    shape,
    data: () => {
      const n = shape.reduce((x, y) => x * y, 1);
      const a = new Float32Array(n);
      if (shape.length === 1) return name.endsWith('.weight') ? a.fill(1) : uniformFill(a, k + 1, 0.01);
      const fanIn = shape.slice(1).reduce((x, y) => x * y, 1);
      return uniformFill(a, k + 1, Math.sqrt(3 / fanIn));
    },
  }));
  await writeSafetensors(file, entries);
}

async function benchModel(): Promise<Pick<SdxlModel, 'weights' | 'config'>> {
  const testModel = path.join(repoRoot, 'src/weights/test-model.ts');
  if (fs.existsSync(testModel)) {
    if (!fs.existsSync(path.join(fullDir, 'model_index.json'))) {
      const mod = (await import(testModel)) as { makeTestModel: (o: Record<string, unknown>) => Promise<unknown> };
      const t0 = performance.now();
      await mod.makeTestModel({ outDir: fullDir, layout: 'diffusers', seed: 0, size: 'full' });
      console.error(`wrote full-size test model to ${fullDir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    return loadModel(fullDir, { cacheDir: path.join(fullDir, '.cache') });
  }
  if (!fs.existsSync(unetOnlyFile)) {
    const t0 = performance.now();
    await writeUNetOnly(unetOnlyFile);
    console.error(`wrote ${unetOnlyFile} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const header = await readSafetensorsHeader(unetOnlyFile);
  const weights = new Map<string, TensorRef>([...header.tensors.keys()].map((k) => [k, tensorRefOf(header, k)]));
  return { weights: { unet: weights }, config: { unet: unetConfigFromShapes(weights, { pooledDim: 1280 }) } } as unknown as SdxlModel;
}

const gb = (kb: number) => kb / 1024 / 1024;

async function child(opt: 'all' | 'extended', prepacking: boolean): Promise<void> {
  const threads = Number(arg('threads', '2'));
  const runs = Number(arg('runs', '2'));
  const size = Number(arg('size', '64'));
  const batch = Number(arg('batch', '2'));
  const model = await benchModel();
  const c = model.config.unet;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const unet = await UNet.create(model as SdxlModel, { threads, optimization: opt, prepacking });
  const createS = (performance.now() - t0) / 1000;
  const dc0 = process.cpuUsage(c0);
  const createCpuS = (dc0.user + dc0.system) / 1e6;
  const rssAfterCreate = gb(process.resourceUsage().maxRSS);
  const inputs = unetInputs(c, size, size, batch);
  const times: number[] = [];
  const cpu: number[] = [];
  let finite = true;
  for (let r = 0; r < runs; r++) {
    const t1 = performance.now();
    const c1 = process.cpuUsage();
    const out = await unet.run(inputs);
    times.push((performance.now() - t1) / 1000);
    const dc = process.cpuUsage(c1);
    cpu.push((dc.user + dc.system) / 1e6);
    finite &&= out.every(Number.isFinite);
  }
  await unet.release();
  const result = { opt, prepacking, threads, batch, latent: `${size}x${size}`, createS, createCpuS, runS: times, runCpuS: cpu, loadavg: os.loadavg()[0], finite, rssAfterCreateGB: rssAfterCreate, peakRssGB: gb(process.resourceUsage().maxRSS) };
  console.log(`RESULT ${JSON.stringify(result)}`);
}

async function main(): Promise<void> {
  const childCase = arg('child', '');
  if (childCase) {
    const [opt, pp] = childCase.split(':');
    await child(opt as 'all' | 'extended', pp === 'on');
    return;
  }
  await benchModel(); // generate the weights once, before the timed children
  const cases = arg('cases', 'all:on,all:off,extended:on,extended:off').split(',');
  const passThrough = ['threads', 'runs', 'size', 'batch'].flatMap((k) => (process.argv.includes(`--${k}`) ? [`--${k}`, arg(k, '')] : []));
  console.log('Wall seconds (CPU seconds of this process); other processes on the machine inflate wall time, not CPU time.');
  console.log('opt       prepack  create s        forward s (first, then warm)        peak RSS GB  load  (diffusers/PyTorch: 25.2 s, 15.6 GB)');
  for (const cs of cases) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', cs, ...passThrough], { cwd: repoRoot, encoding: 'utf8', maxBuffer: 1 << 24 });
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) {
      console.log(`${cs}: failed (exit ${r.status ?? r.signal})\n${r.stderr.slice(-2000)}`);
      continue;
    }
    const x = JSON.parse(line.slice(7)) as {
      opt: string; prepacking: boolean; createS: number; createCpuS: number; runS: number[]; runCpuS: number[]; peakRssGB: number; loadavg: number; finite: boolean;
    };
    const create = `${x.createS.toFixed(1)} (${x.createCpuS.toFixed(1)})`;
    const runs = x.runS.map((t, i) => `${t.toFixed(1)} (${x.runCpuS[i].toFixed(1)})`).join(', ');
    console.log(
      `${x.opt.padEnd(9)} ${(x.prepacking ? 'on' : 'off').padEnd(8)} ${create.padEnd(15)} ${runs.padEnd(35)} ${x.peakRssGB.toFixed(2).padStart(11)}  ${x.loadavg.toFixed(1)}${x.finite ? '' : '  NON-FINITE OUTPUT'}`,
    );
    console.log(`  ${line}`);
  }
}

await main();

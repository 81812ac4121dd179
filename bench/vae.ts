/**
 * VAE benchmark on the full-size SDXL AutoencoderKL architecture with random fp32 weights (generated once into
 * $ATELIER_BENCH_DIR or the OS temp folder, never into the repository): decode 64×64 latents → 512² and encode
 * 512², 2 threads, onnxruntime optimisation 'all' vs 'extended'. Each case runs in its own child process so that
 * its peak RSS is its own. Reference: diffusers on PyTorch CPU decodes 512² in 15.7 s on this machine.
 *
 *   node --import tsx bench/vae.ts [--size 512] [--runs 2] [--threads 2] [--opt all,extended] [--cases decode,encode] [--json]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VaeDecoder, VaeEncoder, vaeScaleFactor, type VaeSource } from '../src/networks/vae.ts';
import { readSafetensorsHeader, tensorRefOf } from '../src/weights/safetensors.ts';
import type { TensorRef, VaeConfig } from '../src/weights/types.ts';
import { uniform, uniformFill } from './random.ts';

const SDXL_VAE: VaeConfig = {
  inChannels: 3,
  latentChannels: 4,
  blockOutChannels: [128, 256, 512, 512],
  layersPerBlock: 2,
  normNumGroups: 32,
  scalingFactor: 0.13025,
};

const benchDir = process.env.ATELIER_BENCH_DIR ?? path.join(os.tmpdir(), 'atelier-bench');
const weightsFile = path.join(benchDir, 'sdxl-vae-random-fp32', 'diffusion_pytorch_model.safetensors');

type Shape = number[];

/** Every tensor of a diffusers AutoencoderKL with this config, in diffusers names. */
function vaeTensorShapes(cfg: VaeConfig): [string, Shape][] {
  const out: [string, Shape][] = [];
  const conv = (name: string, o: number, i: number, k: number) => out.push([`${name}.weight`, [o, i, k, k]], [`${name}.bias`, [o]]);
  const norm = (name: string, c: number) => out.push([`${name}.weight`, [c]], [`${name}.bias`, [c]]);
  const lin = (name: string, o: number, i: number) => out.push([`${name}.weight`, [o, i]], [`${name}.bias`, [o]]);
  const resnet = (p: string, i: number, o: number) => {
    norm(`${p}.norm1`, i);
    conv(`${p}.conv1`, o, i, 3);
    norm(`${p}.norm2`, o);
    conv(`${p}.conv2`, o, o, 3);
    if (i !== o) conv(`${p}.conv_shortcut`, o, i, 1);
  };
  const mid = (p: string, c: number) => {
    resnet(`${p}.resnets.0`, c, c);
    norm(`${p}.attentions.0.group_norm`, c);
    for (const m of ['to_q', 'to_k', 'to_v', 'to_out.0']) lin(`${p}.attentions.0.${m}`, c, c);
    resnet(`${p}.resnets.1`, c, c);
  };
  const b = cfg.blockOutChannels;
  const L = cfg.latentChannels;
  const last = b[b.length - 1];
  conv('encoder.conv_in', b[0], cfg.inChannels, 3);
  for (let i = 0; i < b.length; i++) {
    const inC = i === 0 ? b[0] : b[i - 1];
    for (let j = 0; j < cfg.layersPerBlock; j++) resnet(`encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? inC : b[i], b[i]);
    if (i < b.length - 1) conv(`encoder.down_blocks.${i}.downsamplers.0.conv`, b[i], b[i], 3);
  }
  mid('encoder.mid_block', last);
  norm('encoder.conv_norm_out', last);
  conv('encoder.conv_out', 2 * L, last, 3);
  conv('quant_conv', 2 * L, 2 * L, 1);
  conv('post_quant_conv', L, L, 1);
  conv('decoder.conv_in', last, L, 3);
  mid('decoder.mid_block', last);
  const rev = [...b].reverse();
  let prev = rev[0];
  for (let i = 0; i < rev.length; i++) {
    for (let j = 0; j <= cfg.layersPerBlock; j++) resnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? prev : rev[i], rev[i]);
    if (i < rev.length - 1) conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, rev[i], rev[i], 3);
    prev = rev[i];
  }
  norm('decoder.conv_norm_out', b[0]);
  conv('decoder.conv_out', 3, b[0], 3);
  return out;
}

/** Writes the random fp32 VAE (norm weights 1, biases 0, others uniform with variance 1/fan_in). */
function generateWeights(file: string): void {
  const shapes = vaeTensorShapes(SDXL_VAE);
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', note: 'random SDXL VAE for benchmarks' } };
  let offset = 0;
  for (const [name, shape] of shapes) {
    const bytes = shape.reduce((a, c) => a * c, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeSync(fd, len);
  fs.writeSync(fd, json);
  let params = 0;
  let seed = 1234;
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, c) => a * c, 1);
    params += n;
    const v = new Float32Array(n);
    if (name.endsWith('.weight') && shape.length === 1) v.fill(1);
    else if (!name.endsWith('.bias')) {
      uniformFill(v, seed++, Math.sqrt(3 / (n / shape[0])));
    }
    fs.writeSync(fd, new Uint8Array(v.buffer));
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  console.log(`generated ${file}: ${shapes.length} tensors, ${params} parameters`);
}

async function source(): Promise<VaeSource> {
  const header = await readSafetensorsHeader(weightsFile);
  const vae = new Map<string, TensorRef>();
  for (const name of header.tensors.keys()) vae.set(name, tensorRefOf(header, name));
  return { weights: { vae }, config: { vae: SDXL_VAE } };
}

interface Result {
  kind: string;
  optimization: string;
  size: number;
  createS: number;
  runsS: number[];
  /** process CPU seconds (user + system, both threads) per run: less sensitive to other load than wall time */
  cpuS: number[];
  rssAfterCreateMB: number;
  peakRssMB: number;
  outputFinite: boolean;
}

async function child(kind: 'decode' | 'encode', optimization: 'all' | 'extended', size: number, runs: number, threads: number): Promise<Result> {
  const src = await source();
  const settings = { threads, optimization };
  const t0 = performance.now();
  const net = kind === 'decode' ? await VaeDecoder.create(src, settings) : await VaeEncoder.create(src, settings);
  const createS = (performance.now() - t0) / 1000;
  const rssAfterCreateMB = process.memoryUsage().rss / 2 ** 20;
  const h = size / vaeScaleFactor(SDXL_VAE);
  const input = kind === 'decode' ? uniform(4 * h * h, 7, 1.7) : uniform(3 * size * size, 8, 1);
  const runsS: number[] = [];
  const cpuS: number[] = [];
  let finite = true;
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    const c = process.cpuUsage();
    const out = net instanceof VaeDecoder ? await net.decode(input, 1, h, h) : (await net.encode(input, 1, size, size)).mean;
    runsS.push((performance.now() - t) / 1000);
    const used = process.cpuUsage(c);
    cpuS.push((used.user + used.system) / 1e6);
    finite &&= out.every(Number.isFinite);
  }
  await net.release();
  const peakRssMB = process.resourceUsage().maxRSS / 1024;
  return { kind, optimization, size, createS, runsS, cpuS, rssAfterCreateMB, peakRssMB, outputFinite: finite };
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

async function main(): Promise<void> {
  const size = Number(arg('size', '512'));
  const runs = Number(arg('runs', '2'));
  const threads = Number(arg('threads', '2'));
  if (process.argv.includes('--child')) {
    const kind = arg('child', 'decode') as 'decode' | 'encode';
    const opt = arg('opt', 'all') as 'all' | 'extended';
    console.log(`RESULT ${JSON.stringify(await child(kind, opt, size, runs, threads))}`);
    return;
  }
  if (!fs.existsSync(weightsFile)) generateWeights(weightsFile);
  const self = fileURLToPath(import.meta.url);
  const rows: Result[] = [];
  console.log(`load average at start: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} (${os.cpus().length} CPUs)`);
  for (const kind of arg('cases', 'decode,encode').split(',')) {
    for (const opt of arg('opt', 'all,extended').split(',')) {
      const args = ['--import', 'tsx', self, '--child', kind, '--opt', opt, '--size', String(size), '--runs', String(runs), '--threads', String(threads)];
      const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (r.status !== 0 || !line) throw new Error(`${kind}/${opt} failed (status ${r.status}): ${r.stdout}`);
      const res = JSON.parse(line.slice(7)) as Result;
      rows.push(res);
      console.log(`${kind} ${size}² opt=${opt}: create ${res.createS.toFixed(1)} s, runs ${res.runsS.map((s) => s.toFixed(2)).join(' / ')} s `
        + `(CPU ${res.cpuS.map((s) => s.toFixed(1)).join(' / ')} s), `
        + `RSS after create ${res.rssAfterCreateMB.toFixed(0)} MB, peak ${res.peakRssMB.toFixed(0)} MB, finite ${res.outputFinite}`);
    }
  }
  console.log(`load average at end: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  if (process.argv.includes('--json')) console.log(JSON.stringify({ threads, size, rows }, null, 1));
}

await main();

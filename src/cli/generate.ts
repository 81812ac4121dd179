/** `atelier generate`: text-to-image, or image-to-image when --image is given, with a progress bar on stderr. */
import { WEIGHT_PRECISIONS } from '../weights/types.ts';
import { UNET_QUANTIZATIONS, VAE_QUANTIZATIONS as VAE_QUANT_SCHEMES, type UNetQuantization, type VaeQuantScheme } from '../contract/tables.ts';
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomInt } from 'node:crypto';
import { AtelierError } from '../contract/errors.ts';
import { createEngine } from '../engine/engine.ts';
import type { GenerateRequest, SamplerName, TimestepSpacing } from '../contract/types.ts';
import { decodeImage, encodeImage } from '../images/codec.ts';
import { resizeRgb, snapToMultiple } from '../images/sizes.ts';
import { ensureDefaultTestModel } from './make-test-model.ts';
import { helpText, parseFlags, type FlagSpec } from './args.ts';
import { progressBar } from './progress.ts';

import { SAMPLERS, TIMESTEP_SPACINGS as SPACINGS } from '../contract/tables.ts';

const SPEC: FlagSpec = {
  prompt: { type: 'string', help: 'what the image should show (required)' },
  'negative-prompt': { type: 'string', help: 'what to exclude (default: none → zero embeddings)' },
  image: { type: 'string', help: 'input image file: image-to-image when given' },
  strength: { type: 'number', help: 'image-to-image strength 0.05–1 (default 0.95)' },
  steps: { type: 'number', help: 'denoising steps 1–65 (default 25)' },
  'guidance-scale': { type: 'number', help: 'classifier-free guidance 0–20 (default 7.5; ≤ 1 disables it)' },
  'guidance-rescale': { type: 'number', help: 'guidance rescale 0–1 (default 0)' },
  seed: { type: 'number', help: 'seed 0–2^53-1 (default: random, printed)' },
  width: { type: 'number', help: 'output width (default: input image width, else 1024)' },
  height: { type: 'number', help: 'output height (default: input image height, else 1024)' },
  'num-images': { type: 'number', help: 'images 1–8 (default 1)' },
  sampler: { type: 'string', help: `one of ${SAMPLERS.join(', ')} (default euler)` },
  'timestep-spacing': { type: 'string', help: `one of ${SPACINGS.join(', ')} (default leading; trailing for Lightning/Turbo)` },
  lora: { type: 'string', repeat: true, help: 'LoRA file and scale, path:scale (repeatable, stacked)' },
  embedding: { type: 'string', repeat: true, help: 'textual-inversion file and tokens, path:tok1,tok2 (default tokens <s0>,<s1>)' },
  format: { type: 'string', help: 'png or jpeg (default: from --out extension, else png)' },
  out: { type: 'string', help: 'output file (default out.png); with several images: name-1.png, name-2.png…' },
  model: { type: 'string', help: 'checkpoint: .safetensors file or diffusers folder (default: the built-in tiny test model)' },
  'data-dir': { type: 'string', help: 'data folder for caches and the test model (default ./data)' },
  threads: { type: 'number', help: 'CPU threads (default: all cores)' },
  weights: { type: 'string', help: 'fp32 (default $ATELIER_WEIGHTS, else fp32) or fp16: UNet and text-encoder weights held in 16 bits (half the memory, slower per step on CPU)' },
  quantize: { type: 'string', help: 'int8 or int8-block: quantised UNet Linear layers; int8-full: and int8 resnet convolutions (fastest). Faster on CPU, slightly different images; default $ATELIER_QUANTIZE, else fp32' },
  'vae-quantize': { type: 'string', help: 'int8: VAE decoder resnet convolutions in int8 (faster decode, images within ~1 level; default $ATELIER_VAE_QUANTIZE, else fp32)' },
  device: { type: 'string', help: 'cpu (default), cuda or tensorrt (needs onnxruntime GPU libraries; default $ATELIER_DEVICE)' },
  help: { type: 'boolean', help: 'show this help' },
};

function num(v: unknown, name: string, def: number, min: number, max: number, integer = false): number {
  const x = v === undefined ? def : (v as number);
  if (x < min || x > max || (integer && !Number.isInteger(x))) {
    throw new AtelierError('INVALID_INPUT', `--${name} must be ${integer ? 'an integer ' : ''}in ${min}–${max}, got ${x}`, { field: name });
  }
  return x;
}

function oneOf<T extends string>(v: unknown, name: string, allowed: readonly T[], def: T): T {
  if (v === undefined) return def;
  if (!allowed.includes(v as T)) throw new AtelierError('INVALID_INPUT', `--${name} must be one of ${allowed.join(', ')}, got "${v}"`, { field: name });
  return v as T;
}

/** `path:scale` → LoRA; the scale defaults to 1. Windows-style drive letters are not a concern here. */
export function parseLoraFlag(s: string): { file: string; scale: number } {
  const m = /^(.*):(-?[0-9.]+)$/.exec(s);
  const file = path.resolve(m ? m[1] : s);
  const scale = m ? Number(m[2]) : 1;
  if (!(scale >= 0 && scale <= 4)) throw new AtelierError('INVALID_INPUT', `--lora scale must be in 0–4, got ${m?.[2]}`, { field: 'lora' });
  return { file, scale };
}

export function parseEmbeddingFlag(s: string): { file: string; tokens: string[] } {
  const i = s.lastIndexOf(':');
  if (i > 0 && !s.slice(i + 1).includes('/')) return { file: path.resolve(s.slice(0, i)), tokens: s.slice(i + 1).split(',').filter(Boolean) };
  return { file: path.resolve(s), tokens: ['<s0>', '<s1>'] };
}

export async function generateCommand(argv: string[]): Promise<void> {
  const f = parseFlags(argv, SPEC);
  if (f.help) {
    process.stdout.write(helpText('generate', SPEC));
    return;
  }
  if (typeof f.prompt !== 'string' || f.prompt.length === 0) throw new AtelierError('INVALID_INPUT', '--prompt is required', { field: 'prompt' });
  const dataDir = path.resolve((f['data-dir'] as string) ?? 'data');
  const modelPath = f.model ? path.resolve(f.model as string) : await ensureDefaultTestModel(dataDir);
  if (!f.model) process.stderr.write(`atelier: no --model given: using the built-in tiny RANDOM test model (${modelPath}); images will be noise.\n`);

  let image = undefined;
  if (f.image) {
    const bytes = await fs.readFile(f.image as string).catch((cause) => {
      throw new AtelierError('INVALID_INPUT', `cannot read --image "${f.image}": ${(cause as Error).message}`, { field: 'image', cause });
    });
    image = await decodeImage(bytes, { maxPixels: 64e6, field: 'image' });
  }
  const width = snapToMultiple(num(f.width, 'width', image?.width ?? 1024, 64, 14142));
  const height = snapToMultiple(num(f.height, 'height', image?.height ?? 1024, 64, 14142));
  if (image && (image.width !== width || image.height !== height)) image = await resizeRgb(image, width, height, 'cover');

  const out = path.resolve((f.out as string) ?? 'out.png');
  const ext = path.extname(out).toLowerCase();
  const format = oneOf(f.format ?? (ext === '.jpg' || ext === '.jpeg' ? 'jpeg' : 'png'), 'format', ['png', 'jpeg'] as const, 'png');
  const seed = f.seed === undefined ? randomSeed() : num(f.seed, 'seed', 0, 0, Number.MAX_SAFE_INTEGER, true);

  const request: GenerateRequest = {
    task: image ? 'image-to-image' : 'text-to-image',
    prompt: f.prompt,
    negativePrompt: (f['negative-prompt'] as string | undefined) ?? null,
    image,
    strength: num(f.strength, 'strength', 0.95, 0.05, 1),
    width,
    height,
    numImages: num(f['num-images'], 'num-images', 1, 1, 8, true),
    steps: num(f.steps, 'steps', 25, 1, 65, true),
    guidanceScale: num(f['guidance-scale'], 'guidance-scale', 7.5, 0, 20),
    guidanceRescale: num(f['guidance-rescale'], 'guidance-rescale', 0, 0, 1),
    seed,
    sampler: oneOf(f.sampler, 'sampler', SAMPLERS, 'euler'),
    timestepSpacing: oneOf(f['timestep-spacing'], 'timestep-spacing', SPACINGS, 'leading'),
    loras: ((f.lora as string[] | undefined) ?? []).map(parseLoraFlag),
    embeddings: ((f.embedding as string[] | undefined) ?? []).map(parseEmbeddingFlag),
  };

  const engine = await createEngine({
    models: [{ name: path.basename(modelPath), path: modelPath }],
    dataDir,
    threads: f.threads as number | undefined,
    device: oneOf(f.device ?? process.env.ATELIER_DEVICE, 'device', ['cpu', 'cuda', 'tensorrt', 'webgpu'] as const, 'cpu'),
    quantize: quantizeFlag(f.quantize ?? process.env.ATELIER_QUANTIZE),
    vaeQuantize: vaeQuantizeFlag(f['vae-quantize'] ?? process.env.ATELIER_VAE_QUANTIZE),
    oneShot: true, // one generation: networks are released as soon as the pipeline is past them (lower peak memory)
    weights: oneOf(f.weights ?? process.env.ATELIER_WEIGHTS, 'weights', WEIGHT_PRECISIONS, 'fp32'),
  });
  const bar = progressBar(process.stderr);
  try {
    const result = await engine.generate(request, {
      onProgress: (e) => bar.update(e.step, e.total, e.etaMs),
      onLog: (line) => bar.log(line),
    });
    bar.done();
    const files: string[] = [];
    for (let i = 0; i < result.images.length; i++) {
      const file = result.images.length === 1 ? out : out.replace(/(\.[^.]*)?$/, `-${i + 1}$1`);
      const { bytes } = await encodeImage(result.images[i], format);
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(file, bytes);
      files.push(file);
    }
    process.stdout.write(JSON.stringify({ files, seed: result.seed, timings: result.timings }) + '\n');
  } finally {
    await engine.close();
  }
}

/** A fresh seed, chosen here and printed so the run can be reproduced. */
function randomSeed(): number {
  return randomInt(0, 2 ** 32);
}

function vaeQuantizeFlag(v: unknown): VaeQuantScheme | undefined {
  const scheme = oneOf(v, 'vae-quantize', [...VAE_QUANT_SCHEMES, 'off'], 'off');
  return scheme === 'off' ? undefined : scheme;
}

function quantizeFlag(v: unknown): UNetQuantization | undefined {
  const q = oneOf(v, 'quantize', [...UNET_QUANTIZATIONS, 'off'], 'off');
  return q === 'off' ? undefined : q;
}

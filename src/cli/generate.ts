/**
 * `atelier generate`: text-to-image, or image-to-image when --image is given, with a progress bar on stderr.
 * The request flags, their `--help`, ranges, defaults and error messages come from the request field table
 * (contract/fields.ts: every field with a `cli` flag); the engine flags from ENGINE_OPTIONS; one parser reads both.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import { checkInputs } from '../contract/check-inputs.ts';
import { fieldsFor, mapFields, type DirectRequestKey, type RequestField } from '../contract/fields.ts';
import { optionsHelp, parseOptions, type OptionSpec, type ParsedOptions } from '../contract/options.ts';
import { randomSeed } from '../contract/seed.ts';
import { ENGINE_OPTIONS, engineSettingsFrom } from '../contract/settings.ts';
import { MAX_SIDE, MIN_SIDE } from '../contract/tables.ts';
import type { GenerateRequest } from '../contract/types.ts';
import { describeAllowed, validateObject, type Issue } from '../contract/validate.ts';
import { createEngine } from '../engine/engine.ts';
import { decodeImage, encodeImage } from '../images/codec.ts';
import { resizeRgb, snapToMultiple } from '../images/sizes.ts';
import { ensureDefaultTestModel } from './make-test-model.ts';
import { progressBar } from './progress.ts';

/** The table's fields that are flags here (both tasks: --strength only matters with --image), plus the adapters. */
const FIELDS: readonly RequestField[] = fieldsFor('image-to-image').filter((f) => f.cli || f.name === 'loras' || f.name === 'embeddings');
const FLAG_OF = new Map(FIELDS.filter((f) => f.cli).map((f) => [f.name, f.cli!]));

function fieldOption(f: RequestField): OptionSpec {
  const allowed = describeAllowed(f.type);
  const def = f.default !== undefined ? `default ${JSON.stringify(f.default)}` : f.required ? 'required' : '';
  const tail = [allowed, def].filter(Boolean).join('; ');
  const kind = f.type.kind === 'integer' || f.type.kind === 'number' ? 'number' : 'string';
  return { flag: f.cli!, kind, help: `${f.description}${tail ? ` (${tail})` : ''}` };
}

const CLI_ONLY: readonly OptionSpec[] = [
  { flag: 'image', kind: 'string', help: 'input image file: image-to-image when given' },
  { flag: 'width', kind: 'integer', min: MIN_SIDE, max: MAX_SIDE, help: 'output width, snapped to a multiple of 8 (default: the input image width, else 1024)' },
  { flag: 'height', kind: 'integer', min: MIN_SIDE, max: MAX_SIDE, help: 'output height, snapped to a multiple of 8 (default: the input image height, else 1024)' },
  { flag: 'lora', kind: 'repeat', help: 'LoRA file and scale, path:scale (repeatable, stacked; scale 0 – 4, default 1)' },
  { flag: 'embedding', kind: 'repeat', help: 'textual-inversion file and tokens, path:tok1,tok2 (default tokens <s0>,<s1>)' },
  { flag: 'out', kind: 'string', help: 'output file (default out.png); with several images: name-1.png, name-2.png…' },
  { flag: 'help', kind: 'boolean', help: 'show this help' },
];

/** Every flag of `atelier generate`: request fields, CLI-only ones, engine settings (one model, one generation). */
export const GENERATE_OPTIONS: readonly OptionSpec[] = [
  ...FIELDS.filter((f) => f.cli).map(fieldOption),
  ...CLI_ONLY,
  ...ENGINE_OPTIONS.filter((o) => o.flag !== 'default-model' && o.flag !== 'max-loaded-models'),
];

/** `path:scale` → LoRA (scale 1 when absent; its range is checked with the table's `loras` field). */
export function parseLoraFlag(s: string): { file: string; scale: number } {
  const m = /^(.*):(-?[0-9.]+)$/.exec(s);
  return { file: path.resolve(m ? m[1]! : s), scale: m ? Number(m[2]) : 1 };
}

export function parseEmbeddingFlag(s: string): { file: string; tokens: string[] } {
  const i = s.lastIndexOf(':');
  if (i > 0 && !s.slice(i + 1).includes('/')) return { file: path.resolve(s.slice(0, i)), tokens: s.slice(i + 1).split(',').filter(Boolean) };
  return { file: path.resolve(s), tokens: ['<s0>', '<s1>'] };
}

/** Validation issues in the CLI's words: `--steps: 99 is out of range; allowed 1 – 65`. */
function cliMessage(issue: Issue): string {
  const [, name, ...rest] = issue.loc;
  const flag = typeof name === 'string' ? FLAG_OF.get(name) : undefined;
  if (name === 'loras' || name === 'embeddings') return issue.msg.replace(/^[^:]*:/, `--${name === 'loras' ? 'lora' : 'embedding'} ${Number(rest[0]) + 1}${rest.length > 1 ? ` ${rest.slice(1).join('.')}` : ''}:`);
  if (!flag) return issue.msg;
  if (issue.type === 'missing') return `--${flag} is required`;
  return issue.msg.replace(/^[^:]*:/, `--${flag}:`);
}

/** The request the flags describe, validated by the field table and the cross-field rules. */
export function requestFromFlags(parsed: ParsedOptions): {
  fields: Pick<GenerateRequest, DirectRequestKey> & Pick<GenerateRequest, 'negativePrompt' | 'seed' | 'loras' | 'embeddings'>;
  format: 'jpeg' | 'png';
} {
  const v = parsed.values;
  const wire: Record<string, unknown> = {};
  for (const f of FIELDS) if (f.cli && v[f.cli] !== undefined) wire[f.name] = v[f.cli];
  const out = (v.out as string | undefined) ?? 'out.png';
  const ext = path.extname(out).toLowerCase();
  wire.format ??= ext === '.jpg' || ext === '.jpeg' ? 'jpeg' : 'png';
  const loras = ((v.lora as string[] | undefined) ?? []).map(parseLoraFlag);
  const embeddings = ((v.embedding as string[] | undefined) ?? []).map(parseEmbeddingFlag);
  wire.loras = loras.map((l) => ({ path: l.file, scale: l.scale }));
  wire.embeddings = embeddings.map((e) => ({ path: e.file, tokens: e.tokens }));
  const { value, issues } = validateObject(wire, FIELDS);
  if (issues.length === 0) issues.push(...checkInputs(value));
  if (issues.length > 0) {
    throw new AtelierError('INVALID_INPUT', issues.map(cliMessage).join('\n'), { field: issues[0]!.loc.slice(1).join('.') });
  }
  const direct = mapFields(FIELDS, value).request as Pick<GenerateRequest, DirectRequestKey>;
  return {
    fields: {
      ...direct,
      // an explicit "" is encoded like any prompt; no flag = zero negative conditioning
      negativePrompt: (value.negative_prompt !== undefined && v['negative-prompt'] !== undefined ? value.negative_prompt : null) as string | null,
      seed: (value.seed as number | undefined) ?? randomSeed(),
      loras,
      embeddings,
    },
    format: value.format as 'jpeg' | 'png',
  };
}

export async function generateCommand(argv: string[]): Promise<void> {
  const parsed = parseOptions(argv, GENERATE_OPTIONS, process.env);
  if (parsed.values.help) {
    process.stdout.write(`usage: atelier generate [flags]\n${optionsHelp(GENERATE_OPTIONS).join('\n')}\n`);
    return;
  }
  const { fields, format } = requestFromFlags(parsed);
  const settings = engineSettingsFrom(parsed, process.cwd(), { oneShot: true });
  if (settings.models.length > 1) throw new AtelierError('INVALID_INPUT', `--model: generate runs one model, got ${settings.models.length}`, { field: 'model' });
  if (settings.models.length === 0) {
    const file = await ensureDefaultTestModel(settings.dataDir);
    process.stderr.write(`atelier: no --model given: using the built-in tiny RANDOM test model (${file}); images will be noise.\n`);
    settings.models.push({ name: path.basename(file), path: file, isTestModel: true });
  }

  let image = undefined;
  const imageFile = parsed.values.image as string | undefined;
  if (imageFile) {
    const bytes = await fs.readFile(imageFile).catch((cause) => {
      throw new AtelierError('INVALID_INPUT', `cannot read --image "${imageFile}": ${(cause as Error).message}`, { field: 'image', cause });
    });
    image = await decodeImage(bytes, { maxPixels: 64e6, field: 'image' });
  }
  const width = snapToMultiple((parsed.values.width as number | undefined) ?? image?.width ?? 1024);
  const height = snapToMultiple((parsed.values.height as number | undefined) ?? image?.height ?? 1024);
  if (image && (image.width !== width || image.height !== height)) image = await resizeRgb(image, width, height, 'cover');
  const request: GenerateRequest = {
    task: image ? 'image-to-image' : 'text-to-image',
    ...fields,
    strength: image ? fields.strength : 1,
    image,
    width,
    height,
  };

  const out = path.resolve((parsed.values.out as string | undefined) ?? 'out.png');
  const engine = await createEngine(settings);
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
      const { bytes } = await encodeImage(result.images[i]!, format);
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(file, bytes);
      files.push(file);
    }
    process.stdout.write(JSON.stringify({ files, seed: result.seed, timings: result.timings }) + '\n');
  } finally {
    await engine.close();
  }
}

/**
 * The one flag/environment parser of every command (`serve`, `generate`, `bench`, …): `--name value`,
 * `--name=value`, boolean `--flag`, repeatable flags, and each option's environment variable. Flags win over
 * the environment. Values are checked against the option's kind, range or allowed values; a mistake names the
 * flag, its variable, the value and what is allowed.
 */
import { AtelierError } from './errors.ts';

export interface OptionSpec {
  flag: string;
  /** environment variable read when the flag is absent */
  env?: string;
  /** list: repeatable, comma-separated values split; repeat: repeatable, each value whole */
  kind: 'string' | 'integer' | 'number' | 'boolean' | 'list' | 'repeat';
  help: string;
  /** allowed values of a string option */
  values?: readonly string[];
  min?: number;
  max?: number;
}

export type OptionValue = string | number | boolean | string[];

export interface ParsedOptions {
  values: Record<string, OptionValue | undefined>;
  /** arguments that are not flags (only where `positional` is allowed) */
  positional: string[];
}

export function parseOptions(
  argv: readonly string[],
  specs: readonly OptionSpec[],
  env: Readonly<Record<string, string | undefined>> = {},
  opts: { positional?: boolean } = {},
): ParsedOptions {
  const byFlag = new Map(specs.map((s) => [s.flag, s]));
  const raw = new Map<string, string[]>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      if (opts.positional) {
        positional.push(arg);
        continue;
      }
      throw optionError(undefined, arg, 'flags of the form --name value');
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const spec = byFlag.get(name);
    if (!spec) throw optionError({ flag: name }, arg, `one of ${specs.map((s) => `--${s.flag}`).join(', ')}`);
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (spec.kind === 'boolean') value = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw optionError(spec, arg, 'a value after the flag');
      value = next;
      i++;
    }
    raw.set(name, [...(raw.get(name) ?? []), value]);
  }
  const values: Record<string, OptionValue | undefined> = {};
  for (const spec of specs) {
    const fromFlags = raw.get(spec.flag);
    const fromEnv = spec.env === undefined ? undefined : env[spec.env];
    const texts = fromFlags ?? (fromEnv === undefined || fromEnv === '' ? undefined : [fromEnv]);
    if (texts === undefined) continue;
    values[spec.flag] = convert(spec, texts);
  }
  return { values, positional };
}

function convert(spec: OptionSpec, texts: string[]): OptionValue {
  if (spec.kind === 'list') {
    return texts.flatMap((t) => t.split(',')).map((s) => s.trim()).filter((s) => s.length > 0);
  }
  if (spec.kind === 'repeat') return texts;
  const text = texts[texts.length - 1]!;
  switch (spec.kind) {
    case 'boolean': {
      const t = text.toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(t)) return true;
      if (['false', '0', 'no', 'off'].includes(t)) return false;
      throw optionError(spec, text, 'true or false');
    }
    case 'integer':
    case 'number': {
      const n = Number(text);
      const ok = text.trim() !== '' && Number.isFinite(n) && (spec.kind === 'number' || /^\s*-?\d+\s*$/.test(text));
      const lo = spec.min ?? -Infinity;
      const hi = spec.max ?? Infinity;
      if (!ok || n < lo || n > hi) {
        const what = spec.kind === 'integer' ? 'an integer' : 'a number';
        throw optionError(spec, text, spec.min !== undefined && spec.max !== undefined ? `${what} ${spec.min} – ${spec.max}` : what);
      }
      return n;
    }
    case 'string':
      if (spec.values && !spec.values.includes(text)) throw optionError(spec, text, `one of ${spec.values.join(', ')}`);
      return text;
  }
}

/** `--flag / ENV: "value" is not valid; expected …` */
export function optionError(spec: Pick<OptionSpec, 'flag' | 'env'> | undefined, value: string, allowed: string): AtelierError {
  const where = spec ? `--${spec.flag}${spec.env ? ` / ${spec.env}` : ''}: ` : '';
  return new AtelierError('INVALID_INPUT', `${where}${JSON.stringify(value)} is not valid; expected ${allowed}`, spec ? { field: spec.flag } : {});
}

/** `--help` lines: flag, variable, meaning (with the allowed values). */
export function optionsHelp(specs: readonly OptionSpec[]): string[] {
  return specs.map((o) => {
    const allowed = o.values ? ` [${o.values.join('|')}]` : '';
    const arg = { boolean: '', list: ' <v,…>', repeat: ' <v> …', string: ' <v>', integer: ' <n>', number: ' <n>' }[o.kind];
    const flag = `--${o.flag}${arg}`;
    return `  ${flag.padEnd(26)} ${(o.env ?? '').padEnd(27)} ${o.help}${allowed}`;
  });
}

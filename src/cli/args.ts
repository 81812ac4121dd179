/** A small flag parser: `--name value`, `--name=value`, boolean `--flag`, repeatable flags collected in arrays. */
import { AtelierError } from '../contract/errors.ts';

export interface FlagSpec {
  [name: string]: { type: 'string' | 'number' | 'boolean'; repeat?: boolean; help: string };
}

export type Parsed = Record<string, string | number | boolean | string[] | undefined> & { _: string[] };

export function parseFlags(argv: readonly string[], spec: FlagSpec): Parsed {
  const out: Parsed = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      out._.push(a);
      continue;
    }
    let [name, value] = a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const s = spec[name];
    if (!s) throw new AtelierError('INVALID_INPUT', `unknown flag --${name}; known: ${Object.keys(spec).map((k) => `--${k}`).join(' ')}`, { field: name });
    if (s.type === 'boolean') {
      out[name] = value === undefined ? true : value !== 'false';
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new AtelierError('INVALID_INPUT', `flag --${name} needs a value`, { field: name });
    }
    let v: string | number = value;
    if (s.type === 'number') {
      v = Number(value);
      if (!Number.isFinite(v)) throw new AtelierError('INVALID_INPUT', `flag --${name} needs a number, got "${value}"`, { field: name });
    }
    if (s.repeat) ((out[name] as string[] | undefined) ?? (out[name] = [])).push(String(v) as never);
    else out[name] = v;
  }
  return out;
}

export function helpText(command: string, spec: FlagSpec): string {
  const lines = Object.entries(spec).map(([k, s]) => `  --${k}${s.type === 'boolean' ? '' : ` <${s.type}>`}${s.repeat ? ' (repeatable)' : ''}\n      ${s.help}`);
  return `usage: atelier ${command} [flags]\n${lines.join('\n')}\n`;
}

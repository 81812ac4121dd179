/** The small commands' flag tables (`models`, `make-test-model`, `parity`), read by the one option parser (contract/options.ts). */
import { optionsHelp, parseOptions, type OptionSpec } from '../contract/options.ts';

export interface FlagSpec {
  [name: string]: { type: 'string' | 'number' | 'boolean'; repeat?: boolean; help: string; env?: string };
}

export type Parsed = Record<string, string | number | boolean | string[] | undefined> & { _: string[] };

function specsOf(spec: FlagSpec): OptionSpec[] {
  return Object.entries(spec).map(([flag, s]) => ({ flag, kind: s.repeat ? 'repeat' : s.type, help: s.help, ...(s.env ? { env: s.env } : {}) }));
}

export function parseFlags(argv: readonly string[], spec: FlagSpec, env: Readonly<Record<string, string | undefined>> = process.env): Parsed {
  const { values, positional } = parseOptions(argv, specsOf(spec), env, { positional: true });
  return { ...values, _: positional };
}

export function helpText(command: string, spec: FlagSpec): string {
  return `usage: atelier ${command} [flags]\n${optionsHelp(specsOf(spec)).join('\n')}\n`;
}

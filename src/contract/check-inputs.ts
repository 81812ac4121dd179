/**
 * The rules that span several fields, applied at submit time after each field was validated on its own
 * (validate.ts), so that no request is accepted that the engine would refuse for an input reason.
 * Each rule names the field to fix and what is allowed; issues have the shape of validation issues.
 */
import { LCM_ORIGINAL_STEPS } from './tables.ts';
import type { Issue } from './validate.ts';

/** A validated wire input (snake_case fields with their defaults). */
type Wire = Readonly<Record<string, unknown>>;

interface Rule {
  /** what the rule enforces, for the README and the tests */
  name: string;
  check(wire: Wire): Issue | undefined;
}

export const CROSS_FIELD_RULES: readonly Rule[] = Object.freeze([
  {
    name: 'the lcm sampler takes at most 50 steps (its distillation grid)',
    check(w) {
      const steps = w.num_inference_steps;
      if (w.sampler !== 'lcm' || typeof steps !== 'number' || steps <= LCM_ORIGINAL_STEPS) return undefined;
      return {
        loc: ['body', 'num_inference_steps'],
        msg: `num_inference_steps: ${steps} is out of range for sampler "lcm"; allowed 1 – ${LCM_ORIGINAL_STEPS} with it (or choose another sampler)`,
        type: 'less_than_equal',
        input: steps,
        ctx: { ge: 1, le: LCM_ORIGINAL_STEPS, sampler: 'lcm' },
      };
    },
  },
  {
    name: 'a token is bound to one embedding only',
    check(w) {
      const embeddings = Array.isArray(w.embeddings) ? (w.embeddings as { tokens?: unknown }[]) : [];
      const owner = new Map<string, number>();
      for (let i = 0; i < embeddings.length; i++) {
        const tokens = Array.isArray(embeddings[i]?.tokens) ? (embeddings[i]!.tokens as string[]) : [];
        for (let j = 0; j < tokens.length; j++) {
          const first = owner.get(tokens[j]!);
          if (first === undefined) {
            owner.set(tokens[j]!, i);
            continue;
          }
          const where = first === i ? 'earlier in the same list' : `by embeddings.${first}`;
          return {
            loc: ['body', 'embeddings', i, 'tokens', j],
            msg: `embeddings.${i}.tokens.${j}: ${JSON.stringify(tokens[j])} is already bound ${where}; give each embedding its own tokens (e.g. "<e${i}a>", "<e${i}b>")`,
            type: 'value_error',
            input: tokens[j],
          };
        }
      }
      return undefined;
    },
  },
] satisfies Rule[]);

/** Every cross-field issue of a validated wire input (empty when it is acceptable). */
export function checkInputs(wire: Wire): Issue[] {
  return CROSS_FIELD_RULES.map((r) => r.check(wire)).filter((i): i is Issue => i !== undefined);
}

/**
 * Key maps are tables of module paths (`input_blocks.4.1` → `down_blocks.1.attentions.0`).
 * A key is mapped by its longest dotted prefix found in the table; the rest is kept verbatim.
 */

export type PrefixTable = Map<string, string>;

/** Maps `key` through the longest dotted prefix present in `table`; undefined when none matches. */
export function mapByLongestPrefix(key: string, table: ReadonlyMap<string, string>): string | undefined {
  const parts = key.split('.');
  for (let n = parts.length; n >= 1; n--) {
    const prefix = parts.slice(0, n).join('.');
    const target = table.get(prefix);
    if (target !== undefined) {
      const rest = parts.slice(n).join('.');
      if (target === '') return rest;
      return rest ? `${target}.${rest}` : target;
    }
  }
  return undefined;
}

/** The reverse table (values must be unique). */
export function invertTable(table: ReadonlyMap<string, string>): PrefixTable {
  const out: PrefixTable = new Map();
  for (const [k, v] of table) {
    if (out.has(v)) throw new Error(`key table is not invertible: "${v}" has two sources`);
    out.set(v, k);
  }
  return out;
}

/** Adds `from.<a>` → `to.<b>` for every [a, b] of a sub-module table. */
export function addSubTable(table: PrefixTable, from: string, to: string, sub: ReadonlyArray<readonly [string, string]>): void {
  for (const [a, b] of sub) table.set(`${from}.${a}`, `${to}.${b}`);
}

/** Keys that carry no weights a network needs (buffers left over by training code). */
export const IGNORED_KEY_SUFFIXES: readonly string[] = ['position_ids', 'logit_scale', 'attn_mask'];

export function isIgnoredKey(key: string): boolean {
  return IGNORED_KEY_SUFFIXES.some((s) => key === s || key.endsWith(`.${s}`));
}

/** VAE mid-block attention Linear weights: stored as 1×1 convs ([C,C,1,1]) in some files; canonical [C,C]. */
const VAE_ATTN_LINEAR_SUFFIXES = ['to_q.weight', 'to_k.weight', 'to_v.weight', 'to_out.0.weight'];

export function isVaeAttentionLinear(canonicalName: string): boolean {
  return canonicalName.includes('.mid_block.attentions.') && VAE_ATTN_LINEAR_SUFFIXES.some((s) => canonicalName.endsWith(s));
}

/** The canonical shape of a VAE tensor: squeezes [C,C,1,1] attention weights to [C,C]. */
export function canonicalVaeShape(canonicalName: string, shape: number[]): number[] {
  if (shape.length === 4 && shape[2] === 1 && shape[3] === 1 && isVaeAttentionLinear(canonicalName)) return shape.slice(0, 2);
  return shape;
}

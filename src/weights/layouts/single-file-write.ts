/**
 * Canonical tensors → single-file (SGM) entries: the inverse of `single-file.ts`'s tables, with
 * q/k/v re-fused into OpenCLIP `in_proj_*`, `text_projection` stored transposed and VAE attention
 * Linear weights stored as [C,C,1,1].
 */
import type { ComponentName, DType } from '../types.ts';
import { transpose2d, type WriteEntry } from '../safetensors.ts';
import type { ModelConfigs } from '../test-model-spec.ts';
import { invertTable, isVaeAttentionLinear, mapByLongestPrefix } from './key-map.ts';
import { openClipKeyMap, sgmUnetTable, sgmVaeTable, SINGLE_FILE_PARTS, type ComponentKeyMap } from './single-file.ts';

export interface CanonicalTensor {
  name: string;
  shape: number[];
  values: () => Float32Array | Promise<Float32Array>;
}

/** The single-file key map of a component with the given configs. */
export function keyMapForConfig(component: ComponentName, cfg: ModelConfigs): ComponentKeyMap {
  switch (component) {
    case 'unet': {
      const u = cfg.unet;
      const depth = u.transformerLayersPerBlock;
      const structure = {
        levels: u.blockOutChannels.length,
        layersPerBlock: u.layersPerBlock,
        downAttention: depth.map((d) => d > 0),
        upAttention: [...depth].reverse().map((d) => d > 0),
      };
      return { table: sgmUnetTable(structure), special: new Map() };
    }
    case 'vae': return { table: sgmVaeTable(cfg.vae.blockOutChannels.length, cfg.vae.layersPerBlock), special: new Map() };
    case 'textEncoder1': return { table: new Map([['text_model', 'text_model']]), special: new Map() };
    case 'textEncoder2': return openClipKeyMap(cfg.textEncoder2.numLayers);
  }
}

/** Write entries (full SGM names) for one component's canonical tensors. */
export function singleFileEntries(component: ComponentName, tensors: CanonicalTensor[], map: ComponentKeyMap, dtype: DType): WriteEntry[] {
  const prefix = SINGLE_FILE_PARTS.find((p) => p.component === component)!.prefix;
  const inverse = invertTable(map.table);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  // canonical target → [sgm key, special]
  const specialOf = new Map<string, { key: string; index: number; kind: 'split3' | 'transpose'; targets: string[] }>();
  for (const [key, s] of map.special) {
    const targets = s.kind === 'split3' ? s.targets : [s.target];
    targets.forEach((t, index) => specialOf.set(t, { key, index, kind: s.kind, targets }));
  }
  const out: WriteEntry[] = [];
  for (const t of tensors) {
    const sp = specialOf.get(t.name);
    if (sp?.kind === 'split3') {
      if (sp.index !== 0) continue; // written with its q part
      const parts = sp.targets.map((n) => byName.get(n)!);
      out.push({
        name: prefix + sp.key,
        dtype,
        shape: [t.shape[0] * 3, ...t.shape.slice(1)],
        data: async () => {
          const vs = await Promise.all(parts.map((p) => p.values()));
          const all = new Float32Array(vs.reduce((n, v) => n + v.length, 0));
          let o = 0;
          for (const v of vs) { all.set(v, o); o += v.length; }
          return all;
        },
      });
      continue;
    }
    if (sp?.kind === 'transpose') {
      const [rows, cols] = t.shape;
      out.push({ name: prefix + sp.key, dtype, shape: [cols, rows], data: async () => transpose2d(await t.values(), rows, cols) });
      continue;
    }
    const key = mapByLongestPrefix(t.name, inverse);
    if (key === undefined) throw new Error(`no single-file name for ${component} tensor "${t.name}"`);
    const shape = component === 'vae' && isVaeAttentionLinear(t.name) ? [...t.shape, 1, 1] : t.shape;
    out.push({ name: prefix + key, dtype, shape, data: t.values });
  }
  return out;
}

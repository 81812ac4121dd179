/**
 * Which checkpoints may be loaded without their config.json files. Tensor shapes give every width and depth, but
 * not the attention head counts (UNet `attention_head_dim` per level, CLIP `num_attention_heads`) nor the
 * GroupNorm group counts (`norm_num_groups`): `config-from-shapes.ts` fills those in by rule, and the rule is
 * right only for the widths it was written for:
 * - Stable Diffusion XL (UNet 320/640/1280 with head dim 64, VAE 128/256/512/512, CLIP-L 768 with 12 heads,
 *   OpenCLIP bigG 1280 with 20 heads, 32 norm groups);
 * - the tiny test models (the oracle's `tiny-sdxl` and `makeTestModel`'s 'tiny': UNet 16/32/64 with head dim 16,
 *   VAE 32/32/64/64, CLIP 32 and 64 with 4 heads, 8 norm groups).
 * A component with other widths and no config.json would run with guessed head counts and compute wrong numbers
 * without a word, so it is refused with a message that says what cannot be inferred and how to pass a config.
 */
import { AtelierError } from '../contract/errors.ts';
import type { ComponentName, SdxlModel } from './types.ts';

type Configs = SdxlModel['config'];

interface Rule {
  label: string;
  /** the widths the rule looks at, and the config key that names them */
  widthKey: string;
  widths: (c: Configs) => number[];
  known: readonly (readonly number[])[];
  /** what tensor shapes cannot tell */
  cannot: string;
  folder: string;
}

/** The widths whose un-inferable hyper-parameters the shape rules know, per component: SDXL's, then the tiny test models'. */
const RULES: Record<ComponentName, Rule> = {
  unet: {
    label: 'UNet', widthKey: 'block_out_channels', widths: (c) => c.unet.blockOutChannels, known: [[320, 640, 1280], [16, 32, 64]],
    cannot: 'the attention head counts per level (attention_head_dim / num_attention_heads, i.e. the head dims) and norm_num_groups', folder: 'unet',
  },
  vae: {
    label: 'VAE', widthKey: 'block_out_channels', widths: (c) => c.vae.blockOutChannels, known: [[128, 256, 512, 512], [32, 32, 64, 64]],
    cannot: 'norm_num_groups and scaling_factor', folder: 'vae',
  },
  textEncoder1: {
    label: 'text encoder 1', widthKey: 'hidden_size', widths: (c) => [c.textEncoder1.hiddenSize], known: [[768], [32]],
    cannot: 'num_attention_heads (the head dim)', folder: 'text_encoder',
  },
  textEncoder2: {
    label: 'text encoder 2', widthKey: 'hidden_size', widths: (c) => [c.textEncoder2.hiddenSize], known: [[1280], [64]],
    cannot: 'num_attention_heads (the head dim)', folder: 'text_encoder_2',
  },
};

const same = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** The components that have no config.json and widths the shape rules do not know (empty: loadable as is). */
export function unknownWidths(configs: Configs, hasJson: Record<ComponentName, boolean>): ComponentName[] {
  return (Object.keys(RULES) as ComponentName[]).filter((c) => !hasJson[c] && !RULES[c].known.some((k) => same(k, RULES[c].widths(configs))));
}

/** Throws CHECKPOINT_INVALID for a checkpoint with unknown widths and no config (see `unknownWidths`). */
export function refuseUnknownWidths(source: string, configs: Configs, hasJson: Record<ComponentName, boolean>): void {
  const bad = unknownWidths(configs, hasJson);
  if (bad.length === 0) return;
  const what = bad.map((c) => `for ${RULES[c].label} ${RULES[c].widthKey} [${RULES[c].widths(configs).join(', ')}], ${RULES[c].cannot}`);
  const files = bad.map((c) => `${RULES[c].folder}/config.json`).join(', ');
  throw new AtelierError(
    'CHECKPOINT_INVALID',
    `"${source}" has widths that are not Stable Diffusion XL's, and tensor shapes cannot tell the rest of its architecture. `
      + `Cannot be inferred: ${what.join('; ')}. Pass the model's diffusers config folder (a folder holding unet/config.json, `
      + `vae/config.json, text_encoder/config.json and text_encoder_2/config.json; here ${files} matter), as diffusers' `
      + `from_single_file(config=...) takes it: --config DIR (atelier generate / parity), "config" on the model entry, `
      + `or loadModel(source, { config }).`,
  );
}

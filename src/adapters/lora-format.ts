/**
 * LoRA file formats, recognised from their keys. Each tensor key is split into a module key and a role
 * (down / up / alpha). Formats (facts from kohya's sd-scripts `networks/lora.py`, LyCORIS' LoCon, PEFT and
 * diffusers' `loaders/lora_conversion_utils.py`):
 *   kohya / LyCORIS LoCon  `lora_unet_<path_with_underscores>.lora_down.weight | .lora_up.weight | .alpha`
 *                          (conv layers: down [r, in, kh, kw], up [out, r, 1, 1]; CP core `.lora_mid.weight`)
 *   PEFT / diffusers       `unet.<module>.lora_A.weight | .lora_B.weight`  (no alpha: alpha = rank)
 *   diffusers (old)        `unet.<module>.lora.down.weight | .lora.up.weight`,
 *                          `text_encoder.<module>.lora_linear_layer.down.weight | .up.weight`
 */

export type LoraRole = 'down' | 'up' | 'alpha' | 'mid';

/** key suffix → role, longest first so `.lora.down.weight` wins over `.down.weight` */
const SUFFIXES: ReadonlyArray<readonly [string, LoraRole]> = [
  ['.lora_linear_layer.down.weight', 'down'],
  ['.lora_linear_layer.up.weight', 'up'],
  ['.lora.down.weight', 'down'],
  ['.lora.up.weight', 'up'],
  ['.lora_down.weight', 'down'],
  ['.lora_up.weight', 'up'],
  ['.lora_A.weight', 'down'],
  ['.lora_B.weight', 'up'],
  // LyCORIS LoCon with a CP/Tucker core: down [r, in, 1, 1] → mid [r, r, kh, kw] → up [out, r, 1, 1]
  ['.lora_mid.weight', 'mid'],
  ['.alpha', 'alpha'],
];

/**
 * Key suffixes of adapter kinds we recognise but do not apply (LyCORIS LoHa `hada_*`, LoKr `lokr_*`, DoRA's
 * magnitude, OFT, full-weight diffs). A module carrying any of them is not applied at all (its plain
 * `lora_down`/`lora_up` alone would give a wrong result); its keys are reported.
 */
const UNSUPPORTED: ReadonlyArray<readonly [RegExp, string]> = [
  [/\.hada_(w1_a|w1_b|w2_a|w2_b|t1|t2)$/, 'LoHa'],
  [/\.lokr_(w1|w1_a|w1_b|w2|w2_a|w2_b|t2)$/, 'LoKr'],
  [/\.(dora_scale|lora_magnitude_vector(\.weight)?)$/, 'DoRA'],
  [/\.(oft_blocks|oft_diag)$/, 'OFT'],
  [/\.(diff|diff_b)$/, 'full-weight diff'],
];

export function splitLoraKey(key: string): { module: string; role: LoraRole } | undefined {
  for (const [suffix, role] of SUFFIXES) {
    if (key.endsWith(suffix)) return { module: key.slice(0, -suffix.length), role };
  }
  return undefined;
}

/** A key of a recognised but unsupported adapter kind → its module and the kind's name. */
export function splitUnsupportedKey(key: string): { module: string; kind: string } | undefined {
  for (const [re, kind] of UNSUPPORTED) {
    const m = re.exec(key);
    if (m) return { module: key.slice(0, m.index), kind };
  }
  return undefined;
}

export type LoraTarget = 'unet' | 'textEncoder1' | 'textEncoder2';

/** The candidate module keys under which an adapter may name one model module. */
export function candidateKeys(target: LoraTarget, module: string, sgmModule?: string): string[] {
  const us = (s: string) => s.replace(/\./g, '_');
  switch (target) {
    case 'unet':
      return [`unet.${module}`, `lora_unet_${us(module)}`, ...(sgmModule ? [`lora_unet_${us(sgmModule)}`] : [])];
    case 'textEncoder1':
      return [`text_encoder.${module}`, `lora_te1_${us(module)}`];
    case 'textEncoder2':
      return [`text_encoder_2.${module}`, `lora_te2_${us(module)}`];
  }
}

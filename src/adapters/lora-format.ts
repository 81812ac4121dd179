/**
 * LoRA file formats, recognised from their keys. Each tensor key is split into a module key and a role
 * (down / up / alpha). Formats (facts from kohya's sd-scripts `networks/lora.py`, LyCORIS' LoCon, PEFT and
 * diffusers' `loaders/lora_conversion_utils.py`):
 *   kohya / LyCORIS LoCon  `lora_unet_<path_with_underscores>.lora_down.weight | .lora_up.weight | .alpha`
 *   PEFT / diffusers       `unet.<module>.lora_A.weight | .lora_B.weight`  (no alpha: alpha = rank)
 *   diffusers (old)        `unet.<module>.lora.down.weight | .lora.up.weight`,
 *                          `text_encoder.<module>.lora_linear_layer.down.weight | .up.weight`
 */

export type LoraRole = 'down' | 'up' | 'alpha';

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
  ['.alpha', 'alpha'],
];

/** Suffixes of adapter kinds we recognise but do not apply (reported, never dropped silently). */
export const UNSUPPORTED_SUFFIXES: readonly string[] = ['.hada_w1_a', '.hada_w1_b', '.hada_w2_a', '.hada_w2_b', '.lokr_w1', '.lokr_w2', '.dora_scale', '.diff', '.diff_b', '.lora_mid.weight'];

export function splitLoraKey(key: string): { module: string; role: LoraRole } | undefined {
  for (const [suffix, role] of SUFFIXES) {
    if (key.endsWith(suffix)) return { module: key.slice(0, -suffix.length), role };
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

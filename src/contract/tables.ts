/**
 * The frozen tables every layer shares: sampler names, timestep spacings, devices, weight precisions,
 * quantisations and image-size presets. Each list is written once, here; types are derived from the lists.
 */

function frozen<const T extends readonly string[]>(values: T): T {
  return Object.freeze(values);
}

/** Sampling methods (`sampler`). dpmpp_2m_karras is the dpmpp_2m solver on Karras sigmas. */
export const SAMPLERS = frozen(['euler', 'euler_ancestral', 'heun', 'dpmpp_2m', 'dpmpp_2m_karras', 'dpmpp_sde_karras', 'ddim', 'lcm'] as const);
export type SamplerName = (typeof SAMPLERS)[number];

/** How the steps are spread over the training schedule (`timestep_spacing`), as diffusers names them. */
export const TIMESTEP_SPACINGS = frozen(['leading', 'linspace', 'trailing'] as const);
export type TimestepSpacing = (typeof TIMESTEP_SPACINGS)[number];

/** onnxruntime execution providers by device name, in preference order. */
export const DEVICE_PROVIDERS = Object.freeze({
  cpu: Object.freeze(['cpu']),
  cuda: Object.freeze(['cuda', 'cpu']),
  tensorrt: Object.freeze(['tensorrt', 'cuda', 'cpu']),
  webgpu: Object.freeze(['webgpu', 'cpu']),
} as const);
export type Device = keyof typeof DEVICE_PROVIDERS;
export const DEVICES = frozen(Object.keys(DEVICE_PROVIDERS) as Device[]);

/**
 * How the UNet's and text encoders' weights are held in memory; computation is float32 either way.
 * 'fp32' (default) is fastest on CPU; 'fp16' halves the memory and costs ~15–20 % per step on CPU.
 */
export const WEIGHT_PRECISIONS = frozen(['fp32', 'fp16'] as const);
export type WeightPrecision = (typeof WEIGHT_PRECISIONS)[number];

/** Reduced-precision schemes of the UNet's Linear layers. */
export const LINEAR_QUANT_SCHEMES = frozen(['int8', 'int8-block'] as const);
export type QuantScheme = (typeof LINEAR_QUANT_SCHEMES)[number];

/** `--quantize`: a Linear scheme, or `int8-full` = int8 Linear layers plus calibrated int8 resnet convolutions. */
export const UNET_QUANTIZATIONS = frozen(['int8', 'int8-block', 'int8-full'] as const);
export type UNetQuantization = (typeof UNET_QUANTIZATIONS)[number];

/** `--vae-quantize`: the VAE decoder's resnet convolutions in calibrated int8. */
export const VAE_QUANTIZATIONS = frozen(['int8'] as const);
export type VaeQuantScheme = (typeof VAE_QUANTIZATIONS)[number];

export interface Size {
  width: number;
  height: number;
}

/** fal's `image_size` presets. */
export const IMAGE_SIZE_PRESETS = Object.freeze({
  square_hd: Object.freeze({ width: 1024, height: 1024 }),
  square: Object.freeze({ width: 512, height: 512 }),
  portrait_4_3: Object.freeze({ width: 768, height: 1024 }),
  portrait_16_9: Object.freeze({ width: 576, height: 1024 }),
  landscape_4_3: Object.freeze({ width: 1024, height: 768 }),
  landscape_16_9: Object.freeze({ width: 1024, height: 576 }),
} as const satisfies Record<string, Size>);
export type ImageSizePreset = keyof typeof IMAGE_SIZE_PRESETS;
export const IMAGE_SIZE_PRESET_NAMES = frozen(Object.keys(IMAGE_SIZE_PRESETS) as ImageSizePreset[]);
export type ImageSize = ImageSizePreset | Size;

/** Side limits of an image in pixels (the largest keeps a square under 200 MP). */
export const MIN_SIDE = 64;
export const MAX_SIDE = 14142;

/** Seeds: 0 – 2^53-1 (what a JSON number carries exactly). */
export const MAX_SEED = Number.MAX_SAFE_INTEGER;

/** Output encodings. */
export const OUTPUT_FORMATS = frozen(['jpeg', 'png'] as const);
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The LCM scheduler's distillation grid: the lcm sampler runs at most this many steps. */
export const LCM_ORIGINAL_STEPS = 50;

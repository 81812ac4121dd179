/**
 * The VAE's spatial downscale factor: one stride-2 downsample per level but the last, 2^(levels − 1)
 * (diffusers: `vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)`; SDXL: 8).
 * Latents are (height / factor) × (width / factor); every size conversion between pixels and latents uses this.
 */
import type { VaeConfig } from './types.ts';

export function vaeScaleFactor(cfg: Pick<VaeConfig, 'blockOutChannels'>): number {
  return 2 ** (cfg.blockOutChannels.length - 1);
}

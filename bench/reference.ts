/**
 * Reference figures measured on this machine (2 threads, random full-size SDXL base weights) and the
 * project's performance targets, with a pass/fail verdict for each target.
 */

export const REFERENCE = Object.freeze({
  machine: '2-core AVX-512 CPU, 24 GB RAM, 2 threads, random full-size SDXL base weights',
  diffusers_pytorch_cpu: {
    unet_step_cfg_512_s: 25.2,
    unet_step_cfg_512_glibc_s: 38.9,
    unet_step_cfg_1024_s: 137,
    vae_decode_512_s: 15.7,
    peak_rss_gb: 15.6,
    note: 'jemalloc allocator (glibc malloc: 38.9 s per 512² step)',
  },
  stable_diffusion_cpp: {
    unet_step_cfg_512_s: 15.2,
    vae_decode_512_s: 41,
    peak_rss_gb: 8.8,
    note: 'f16 weights, flash attention',
  },
});

/** fastest reference 512² CFG step (stable-diffusion.cpp), the base of the step target */
const FASTEST_STEP_512_S = Math.min(REFERENCE.diffusers_pytorch_cpu.unet_step_cfg_512_s, REFERENCE.stable_diffusion_cpp.unet_step_cfg_512_s);

export const TARGETS = Object.freeze({
  unet_step_cfg_512_s: { max: +(0.7 * FASTEST_STEP_512_S).toFixed(2), why: '≤ 0.7 × the fastest reference (stable-diffusion.cpp 15.2 s)' },
  unet_512_gemm_efficiency: { min: 0.6, why: 'UNet achieved FLOP/s ≥ 60 % of the measured GEMM throughput' },
  vae_decode_512_s: { max: +(0.5 * REFERENCE.diffusers_pytorch_cpu.vae_decode_512_s).toFixed(2), why: '≤ 0.5 × diffusers (15.7 s)' },
  peak_rss_1024_gb: { max: 12, why: 'peak RSS of a full 1024² generation ≤ 12 GB (fp32 weights: 13.9 GB of weights alone)' },
  peak_rss_1024_fp16_gb: { max: 12, why: 'the same with --weights fp16 (16-bit weights, fp32 compute)' },
  lora_switch_fraction: { max: 0.1, why: 'LoRA switch ≤ 10 % of a 25-step 512² generation' },
});

export type Verdict = { value: number | null; limit: string; pass: boolean | null; why: string };

export function verdicts(fig: Record<string, number | null | undefined>): Record<string, Verdict> {
  const out: Record<string, Verdict> = {};
  for (const [key, t] of Object.entries(TARGETS)) {
    const v = fig[key];
    const value = typeof v === 'number' && Number.isFinite(v) ? v : null;
    const max = 'max' in t ? t.max : undefined;
    const min = 'min' in t ? t.min : undefined;
    const pass = value === null ? null : max !== undefined ? value <= max : value >= (min ?? -Infinity);
    out[key] = { value, limit: max !== undefined ? `≤ ${max}` : `≥ ${min}`, pass, why: t.why };
  }
  return out;
}

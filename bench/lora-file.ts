/**
 * A random rank-r LoRA over every transformer Linear of the UNet (attention projections, GEGLU feed-forward,
 * proj_in/proj_out), written as kohya sd-scripts writes SDXL LoRAs: `lora_unet_<sgm_module_with_underscores>`
 * + `.lora_down.weight` [r, in] / `.lora_up.weight` [out, r] in fp16 and `.alpha` (key scheme: kohya
 * `networks/lora.py`). Benchmark data only.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { LoraSlot } from '../src/networks/blocks.ts';
import { writeSafetensors, type WriteEntry } from '../src/weights/safetensors.ts';
import { uniform } from './random.ts';

/** The slots a kohya "all transformer linears" LoRA touches. */
export function transformerLinearSlots(slots: readonly LoraSlot[]): LoraSlot[] {
  return slots.filter((s) => s.kind === 'linear' && s.module.includes('.attentions.'));
}

/** Writes the file unless it exists; returns the number of modules and parameters. */
export async function ensureRandomLora(file: string, slots: readonly LoraSlot[], sgmName: (m: string) => string | undefined, rank: number): Promise<{ modules: number; params: number; written: boolean }> {
  const targets = transformerLinearSlots(slots);
  const params = targets.reduce((a, s) => a + rank * (s.inFeatures + s.outFeatures), 0);
  if (fs.existsSync(file)) return { modules: targets.length, params, written: false };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const entries: WriteEntry[] = [];
  targets.forEach((s, k) => {
    const key = `lora_unet_${(sgmName(s.module) ?? s.module).replace(/\./g, '_')}`;
    entries.push(
      { name: `${key}.alpha`, dtype: 'F32', shape: [], data: Float32Array.of(rank / 2) },
      { name: `${key}.lora_down.weight`, dtype: 'F16', shape: [rank, s.inFeatures], data: () => uniform(rank * s.inFeatures, 2 * k + 1, Math.sqrt(3 / s.inFeatures)) },
      { name: `${key}.lora_up.weight`, dtype: 'F16', shape: [s.outFeatures, rank], data: () => uniform(s.outFeatures * rank, 2 * k + 2, 0.01) },
    );
  });
  await writeSafetensors(file, entries, { ss_network_module: 'networks.lora', ss_network_dim: String(rank), ss_network_alpha: String(rank / 2), note: 'random LoRA for benchmarks' });
  return { modules: targets.length, params, written: true };
}

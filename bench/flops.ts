/**
 * Analytic FLOPs of one SDXL UNet forward pass (multiply-adds × 2 of every Conv, Linear and attention matmul;
 * norms and element-wise ops are left out). The walk follows diffusers' UNet2DConditionModel
 * (models/unets/unet_2d_condition.py and unet_2d_blocks.py), the same structure as src/weights/test-model-spec.ts.
 * It also counts the matrix weights it visits, so the caller can check the walk against the real checkpoint.
 */
import type { UNetConfig } from '../src/weights/types.ts';

export interface FlopCount {
  flops: number;
  /** elements of the Conv/Linear weights visited (each once) */
  matrixParams: number;
  /** of which attention score/value matmuls */
  attentionFlops: number;
}

export function unetFlops(cfg: UNetConfig, x: { batch: number; height: number; width: number; seq: number }): FlopCount {
  let flops = 0;
  let params = 0;
  let attn = 0;
  const conv = (cin: number, cout: number, k: number, h: number, w: number) => {
    flops += 2 * cin * cout * k * k * h * w;
    params += cin * cout * k * k;
  };
  const linear = (cin: number, cout: number, tokens: number) => {
    flops += 2 * cin * cout * tokens;
    params += cin * cout;
  };
  const T = cfg.timeEmbedDim;
  const resnet = (cin: number, cout: number, h: number, w: number) => {
    conv(cin, cout, 3, h, w);
    linear(T, cout, 1);
    conv(cout, cout, 3, h, w);
    if (cin !== cout) conv(cin, cout, 1, h, w);
  };
  const transformer = (c: number, depth: number, h: number, w: number) => {
    const s = h * w;
    const l = x.seq;
    linear(c, c, s); // proj_in
    for (let d = 0; d < depth; d++) {
      for (let i = 0; i < 4; i++) linear(c, c, s); // attn1 q, k, v, out
      const self = 4 * s * s * c; // QKᵀ and softmax·V
      linear(c, c, s); // attn2 q
      linear(cfg.crossAttentionDim, c, l); // attn2 k
      linear(cfg.crossAttentionDim, c, l); // attn2 v
      linear(c, c, s); // attn2 out
      const cross = 4 * s * l * c;
      flops += self + cross;
      attn += self + cross;
      linear(c, 8 * c, s); // GEGLU proj
      linear(4 * c, c, s); // ff out
    }
    linear(c, c, s); // proj_out
  };

  const ch = cfg.blockOutChannels;
  const levels = ch.length;
  let h = x.height;
  let w = x.width;
  conv(cfg.inChannels, ch[0], 3, h, w);
  linear(ch[0], T, 1);
  linear(T, T, 1);
  linear(cfg.projectionClassEmbeddingsInputDim, T, 1);
  linear(T, T, 1);
  let prev = ch[0];
  const skips: number[] = [ch[0]];
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      resnet(j === 0 ? prev : ch[i], ch[i], h, w);
      if (cfg.transformerLayersPerBlock[i] > 0) transformer(ch[i], cfg.transformerLayersPerBlock[i], h, w);
      skips.push(ch[i]);
    }
    if (i < levels - 1) {
      h = Math.ceil(h / 2);
      w = Math.ceil(w / 2);
      conv(ch[i], ch[i], 3, h, w); // stride 2
      skips.push(ch[i]);
    }
    prev = ch[i];
  }
  const top = ch[levels - 1];
  resnet(top, top, h, w);
  transformer(top, cfg.midTransformerLayers, h, w);
  resnet(top, top, h, w);
  const rev = [...ch].reverse();
  const revDepth = [...cfg.transformerLayersPerBlock].reverse();
  let cur = top;
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j <= cfg.layersPerBlock; j++) {
      resnet(cur + skips.pop()!, rev[i], h, w);
      cur = rev[i];
      if (revDepth[i] > 0) transformer(cur, revDepth[i], h, w);
    }
    if (i < levels - 1) {
      h *= 2;
      w *= 2;
      conv(cur, cur, 3, h, w);
    }
  }
  conv(ch[0], cfg.outChannels, 3, h, w);
  const perSample = { flops, attn };
  return { flops: perSample.flops * x.batch, matrixParams: params, attentionFlops: perSample.attn * x.batch };
}

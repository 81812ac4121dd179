/**
 * Weight quantisers for onnxruntime's reduced-precision CPU kernels (pure functions; the quantised-weights cache and
 * the int8 convolutions build on them). Layouts follow onnxruntime's docs/ContribOperators.md:
 * - `DynamicQuantizeMatMul` (com.microsoft): B int8 [K, N], one scale per output column (symmetric, zero point 0);
 *   activations are quantised to uint8 per tensor at run time.
 * - `MatMulNBits` (com.microsoft): B uint8 [N, ceil(K/blockSize), blockSize·bits/8], scales [N, kBlocks], blockwise
 *   along K; without a zero-point input the zero point is 2^(bits−1) (symmetric here); 4-bit values packed two per
 *   byte, the even element in the low nibble.
 * - `QLinearConv`: int8 weights [Cout, Cin·kh·kw] symmetric per output channel (`quantizeInt8PerRow`).
 */
import { AtelierError } from '../contract/errors.ts';

export interface Int8PerColumn {
  /** [K, N] = [in, out] row-major (MatMul's B layout) */
  q: Int8Array;
  /** [N] */
  scale: Float32Array;
}

/** Symmetric per-output-channel int8 of a canonical Linear weight w [out, in] → B [in, out] for MatMul. */
export function quantizeInt8PerColumn(w: Float32Array, out: number, inF: number): Int8PerColumn {
  if (w.length !== out * inF) throw new AtelierError('INTERNAL', `quantizeInt8PerColumn: ${w.length} values for [${out}, ${inF}]`);
  const q = new Int8Array(out * inF);
  const scale = new Float32Array(out);
  for (let n = 0; n < out; n++) {
    const row = n * inF;
    let m = 0;
    for (let k = 0; k < inF; k++) m = Math.max(m, Math.abs(w[row + k]));
    const s = m > 0 ? m / 127 : 1;
    scale[n] = s;
    const inv = 1 / s;
    for (let k = 0; k < inF; k++) {
      const v = Math.round(w[row + k] * inv);
      q[k * out + n] = v > 127 ? 127 : v < -127 ? -127 : v;
    }
  }
  return { q, scale };
}

/** Inverse of `quantizeInt8PerColumn`, back to [out, in] (tests). */
export function dequantizeInt8PerColumn(p: Int8PerColumn, out: number, inF: number): Float32Array {
  const w = new Float32Array(out * inF);
  for (let n = 0; n < out; n++) for (let k = 0; k < inF; k++) w[n * inF + k] = p.q[k * out + n] * p.scale[n];
  return w;
}

export interface BlockQuantized {
  /** [N, kBlocks, blockSize·bits/8] */
  packed: Uint8Array;
  /** [N, kBlocks] */
  scales: Float32Array;
  kBlocks: number;
  blobSize: number;
}

/**
 * Symmetric blockwise quantisation of a canonical Linear weight w [out = N, in = K] for MatMulNBits (bits 4 or 8):
 * per (row, block of `blockSize` along K) scale = absmax / (2^(bits−1) − 1); stored value q + 2^(bits−1) (the op's
 * default zero point). A last partial block is padded with zeros.
 */
export function quantizeBlockwise(w: Float32Array, out: number, inF: number, bits: 4 | 8, blockSize: number): BlockQuantized {
  if (w.length !== out * inF) throw new AtelierError('INTERNAL', `quantizeBlockwise: ${w.length} values for [${out}, ${inF}]`);
  if (!(blockSize >= 16 && (blockSize & (blockSize - 1)) === 0)) throw new AtelierError('INTERNAL', `quantizeBlockwise: block size ${blockSize} is not a power of two ≥ 16`);
  const kBlocks = Math.ceil(inF / blockSize);
  const blobSize = (blockSize * bits) / 8;
  const qmax = (1 << (bits - 1)) - 1;
  const zp = 1 << (bits - 1);
  const packed = new Uint8Array(out * kBlocks * blobSize);
  const scales = new Float32Array(out * kBlocks);
  for (let n = 0; n < out; n++) {
    for (let b = 0; b < kBlocks; b++) {
      const k0 = b * blockSize;
      const k1 = Math.min(inF, k0 + blockSize);
      let m = 0;
      for (let k = k0; k < k1; k++) m = Math.max(m, Math.abs(w[n * inF + k]));
      const s = m > 0 ? m / qmax : 1;
      scales[n * kBlocks + b] = s;
      const inv = 1 / s;
      const blob = (n * kBlocks + b) * blobSize;
      for (let j = 0; j < blockSize; j++) {
        const k = k0 + j;
        let v = k < k1 ? Math.round(w[n * inF + k] * inv) : 0;
        v = (v > qmax ? qmax : v < -qmax ? -qmax : v) + zp;
        if (bits === 8) packed[blob + j] = v;
        else packed[blob + (j >> 1)] |= (j & 1) === 0 ? v : v << 4;
      }
    }
  }
  return { packed, scales, kBlocks, blobSize };
}

/** Inverse of `quantizeBlockwise`, back to [out, in] (tests). */
export function dequantizeBlockwise(p: BlockQuantized, out: number, inF: number, bits: 4 | 8, blockSize: number): Float32Array {
  const w = new Float32Array(out * inF);
  const zp = 1 << (bits - 1);
  for (let n = 0; n < out; n++) {
    for (let k = 0; k < inF; k++) {
      const b = Math.floor(k / blockSize);
      const j = k - b * blockSize;
      const blob = (n * p.kBlocks + b) * p.blobSize;
      const raw = bits === 8 ? p.packed[blob + j] : (p.packed[blob + (j >> 1)] >> ((j & 1) * 4)) & 0xf;
      w[n * inF + k] = (raw - zp) * p.scales[n * p.kBlocks + b];
    }
  }
  return w;
}

/** Symmetric per-row int8 of w [rows, cols] kept in row layout (conv weights [Cout, Cin·kh·kw]). */
export function quantizeInt8PerRow(w: Float32Array, rows: number, cols: number): { q: Int8Array; scale: Float32Array } {
  if (w.length !== rows * cols) throw new AtelierError('INTERNAL', `quantizeInt8PerRow: ${w.length} values for [${rows}, ${cols}]`);
  const q = new Int8Array(rows * cols);
  const scale = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(w[r * cols + c]));
    const s = m > 0 ? m / 127 : 1;
    scale[r] = s;
    const inv = 1 / s;
    for (let c = 0; c < cols; c++) {
      const v = Math.round(w[r * cols + c] * inv);
      q[r * cols + c] = v > 127 ? 127 : v < -127 ? -127 : v;
    }
  }
  return { q, scale };
}

/** Signal-to-noise ratio of a reduced-precision output against its fp32 reference. */
import { AtelierError } from '../contract/errors.ts';

/** 10·log10(var(reference) / mean squared difference); Infinity when equal. */
export function snrDb(reference: Float32Array, test: Float32Array): number {
  if (reference.length !== test.length || reference.length === 0) throw new AtelierError('INTERNAL', `snrDb: ${reference.length} vs ${test.length} values`);
  let mean = 0;
  for (const v of reference) mean += v;
  mean /= reference.length;
  let signal = 0;
  let noise = 0;
  for (let i = 0; i < reference.length; i++) {
    signal += (reference[i] - mean) ** 2;
    noise += (reference[i] - test[i]) ** 2;
  }
  return noise === 0 ? Infinity : 10 * Math.log10(signal / noise);
}

/** Seeds chosen for a request that gives none (service and CLI alike): uniform in 0 – 2^53-1, and returned. */
import { randomBytes } from 'node:crypto';
import { MAX_SEED } from './tables.ts';

export function randomSeed(): number {
  const b = randomBytes(8);
  const hi = b.readUInt32BE(0) & 0x1fffff; // 21 bits
  const lo = b.readUInt32BE(4); // 32 bits
  return Math.min(hi * 2 ** 32 + lo, MAX_SEED);
}

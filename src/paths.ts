import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (the folder holding package.json). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The reference fixtures recorded with diffusers (shared/oracle beside the checkout). */
export function oracleDir(): string {
  return process.env.ATELIER_ORACLE_DIR ?? path.resolve(repoRoot, '../shared/oracle');
}

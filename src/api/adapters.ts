/**
 * The server's LoRA and embedding folders (found in the models folder) and what they hold, for the listing route.
 * Names are resolved inside them by jobs/adapter-sources.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AdapterDirs } from '../jobs/adapter-sources.ts';
import { CATEGORY_FOLDERS } from '../weights/discover.ts';

export interface DiscoveredAdapters {
  loras: { name: string; path: string }[];
  embeddings: { name: string; path: string }[];
}

/** The LoRA and embedding folders of a models folder (A1111 / ComfyUI names, as discover.ts knows them). */
export function adapterDirs(modelsDir: string | undefined, discovered?: DiscoveredAdapters): AdapterDirs {
  const known = {
    loras: new Map((discovered?.loras ?? []).map((e) => [e.name, e.path])),
    embeddings: new Map((discovered?.embeddings ?? []).map((e) => [e.name, e.path])),
  };
  if (!modelsDir) return { loras: [], embeddings: [], known };
  const existing = (subs: readonly string[]) => {
    const found: string[] = [];
    for (const s of subs.flatMap((n) => [n, `models/${n}`])) {
      const dir = path.join(modelsDir, s);
      try {
        const real = fs.realpathSync(dir);
        if (fs.statSync(real).isDirectory() && !found.includes(real)) found.push(real);
      } catch {
        // absent: not part of this layout
      }
    }
    return found;
  };
  return { loras: existing(CATEGORY_FOLDERS.loras), embeddings: existing(CATEGORY_FOLDERS.embeddings), known };
}

/**
 * Every `.safetensors` under the adapter folders (names relative to their folder, without the extension, as
 * requests may give them) plus the names found by the models-folder scan; sorted, without duplicates.
 */
export function listLocalAdapters(dirs: readonly string[], known: ReadonlyMap<string, string>): { name: string; size_bytes: number }[] {
  const out = new Map<string, number>();
  const size = (file: string) => {
    try {
      return fs.statSync(file).size;
    } catch {
      return 0;
    }
  };
  for (const [name, file] of known) out.set(name, size(file));
  const walk = (root: string, dir: string, depth: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory() && depth < 4) walk(root, p, depth + 1);
      else if (e.isFile() && e.name.toLowerCase().endsWith('.safetensors')) {
        const name = path.relative(root, p).split(path.sep).join('/').replace(/\.safetensors$/i, '');
        if (!out.has(name)) out.set(name, size(p));
      }
    }
  };
  for (const d of dirs) walk(d, d, 0);
  return [...out].sort(([a], [b]) => a.localeCompare(b)).map(([name, size_bytes]) => ({ name, size_bytes }));
}

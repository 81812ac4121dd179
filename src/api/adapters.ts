/**
 * `loras[].path` / `embeddings[].path` given as a name: resolved to a file inside the server's LoRA or
 * embedding folders, and nowhere else (no absolute paths, no `..`, no symlink that leads out).
 */
import fs from 'node:fs';
import path from 'node:path';
import { AtelierError } from '../contract/errors.ts';
import { CATEGORY_FOLDERS } from '../weights/discover.ts';

export interface AdapterDirs {
  /** real paths of the LoRA folders */
  loras: string[];
  embeddings: string[];
  /** names found by discoverModels (loose files classified by their keys included) → file */
  known: { loras: Map<string, string>; embeddings: Map<string, string> };
}

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

/** True for values the server fetches (`http(s)://`, `data:`) rather than looks up locally. */
export function isRemoteAdapter(value: string): boolean {
  return /^(https?:\/\/|data:)/i.test(value);
}

/**
 * The absolute path of `name`: a name discoverModels listed, or a file (optionally without `.safetensors`)
 * inside one of `dirs`. Throws INVALID_INPUT naming `field` for unsafe names, ADAPTER_INVALID when nothing matches.
 */
export function resolveLocalAdapter(
  name: string,
  dirs: readonly string[],
  field: string,
  kind: 'LoRA' | 'embedding',
  known: ReadonlyMap<string, string> = new Map(),
): string {
  const refuse = (why: string) =>
    new AtelierError('INVALID_INPUT', `${field}: ${JSON.stringify(name)} ${why}; give an http(s) URL or a file name inside the server's ${kind} folder`, {
      field,
    });
  if (/^[a-z][a-z0-9+.-]*:/i.test(name) && !/^[a-z]:[\\/]/i.test(name)) throw refuse('uses a URL scheme that is not accepted');
  if (name.includes('\0')) throw refuse('contains a NUL character');
  if (path.isAbsolute(name) || /^[a-z]:/i.test(name) || name.startsWith('\\')) throw refuse('is an absolute path');
  if (name.split(/[\\/]/).some((seg) => seg === '..')) throw refuse('contains ".."');
  if (name.includes('\\')) throw refuse('contains a backslash');
  const listed = known.get(name.replace(/\.safetensors$/i, ''));
  if (listed) return listed;
  if (dirs.length === 0) {
    throw new AtelierError('ADAPTER_INVALID', `${field}: ${JSON.stringify(name)} names a local ${kind}, but this server has no ${kind} folder (see --models-dir)`, {
      field,
    });
  }
  const names = /\.safetensors$/i.test(name) ? [name] : [name, `${name}.safetensors`];
  for (const dir of dirs) {
    for (const n of names) {
      const candidate = path.join(dir, n);
      let real: string;
      try {
        real = fs.realpathSync(candidate);
      } catch {
        continue;
      }
      if (!real.startsWith(dir + path.sep)) throw refuse(`leads outside the ${kind} folder (through a symbolic link)`);
      if (!fs.statSync(real).isFile()) continue;
      return real;
    }
  }
  throw new AtelierError('ADAPTER_INVALID', `${field}: no ${kind} named ${JSON.stringify(name)} in ${dirs.join(', ')}`, { field });
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

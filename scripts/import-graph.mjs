// Prints the folder-level import graph of src/ (static `import … from './x.ts'` and `import('./x.ts')`),
// the module-level cycles, and the arrows that go up the layering. Usage: node scripts/import-graph.mjs [--json]
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const src = path.join(root, 'src');

/** Layers from top to bottom; a module may import its own folder and any folder below its own (never a sibling's). */
export const LAYERS = [
  ['cli'],
  ['api'],
  ['jobs'],
  ['engine'],
  ['pipeline'],
  ['adapters'],
  ['quant'],
  ['sampling'],
  ['networks'],
  ['tokenizer'],
  ['images'],
  ['onnx'],
  ['weights'],
  ['contract', 'errors.ts', 'paths.ts'],
];

export function folderOf(rel) {
  const first = rel.split(path.sep)[0];
  return first;
}

export function layerOf(folder) {
  return LAYERS.findIndex((l) => l.includes(folder));
}

function walk(dir, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (/\.(ts|mjs)$/.test(e.name) && !e.name.endsWith('.test.ts') && !/test-support|test-fixtures|test-server-entry/.test(e.name)) out.push(p);
  }
  return out;
}

export function moduleGraph() {
  const edges = new Map();
  for (const file of walk(src)) {
    const text = fs.readFileSync(file, 'utf8');
    const deps = new Set();
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)|new URL\(\s*['"](\.[^'"]+\.mjs)['"]/g)) {
      const spec = m[1] ?? m[2] ?? m[3];
      deps.add(path.relative(src, path.resolve(path.dirname(file), spec)));
    }
    edges.set(path.relative(src, file), deps);
  }
  return edges;
}

export function cycles(edges) {
  const out = [];
  const state = new Map();
  const stack = [];
  const visit = (n) => {
    state.set(n, 1);
    stack.push(n);
    for (const d of edges.get(n) ?? []) {
      if (!edges.has(d)) continue;
      if (state.get(d) === 1) out.push([...stack.slice(stack.indexOf(d)), d]);
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(n, 2);
  };
  for (const n of [...edges.keys()].sort()) if (!state.has(n)) visit(n);
  return out;
}

export function upwardArrows(edges) {
  const out = [];
  for (const [from, deps] of edges) {
    const a = folderOf(from);
    for (const to of deps) {
      const b = folderOf(to);
      if (a === b) continue;
      const la = layerOf(a);
      const lb = layerOf(b);
      if (la < 0 || lb < 0 || lb <= la) out.push(`${from} → ${to}`);
    }
  }
  return out.sort();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const edges = moduleGraph();
  const folders = new Map();
  for (const [from, deps] of edges) {
    for (const to of deps) {
      const a = folderOf(from);
      const b = folderOf(to);
      if (a === b) continue;
      folders.set(`${a} → ${b}`, (folders.get(`${a} → ${b}`) ?? 0) + 1);
    }
  }
  const report = { folderEdges: Object.fromEntries([...folders].sort()), cycles: cycles(edges).map((c) => c.join(' → ')), upward: upwardArrows(edges) };
  if (process.argv.includes('--json')) console.log(JSON.stringify(report, null, 2));
  else {
    console.log('folder edges (imports):');
    for (const [k, v] of Object.entries(report.folderEdges)) console.log(`  ${k} (${v})`);
    console.log(`cycles: ${report.cycles.length}`);
    for (const c of report.cycles) console.log(`  ${c}`);
    console.log(`upward arrows: ${report.upward.length}`);
    for (const u of report.upward) console.log(`  ${u}`);
  }
}

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The layer rule (docs/architecture.md): each top-level folder of src/ may import only the folders
 * listed for it. shared/ is the bottom layer and imports nothing of ours; commands (cli/) reach
 * engine, serve and workers only through core/.
 */
const ALLOWED: Record<string, string[]> = {
  shared: [],
  engine: ['shared'],
  workers: ['shared'],
  serve: ['shared', 'engine'],
  core: ['shared', 'engine', 'workers', 'serve'],
  tui: ['shared', 'core'],
  cli: ['shared', 'core', 'tui'],
};

const src = resolve(import.meta.dirname, '..', 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'python' ? [] : sourceFiles(path);
    return /\.tsx?$/.test(e.name) ? [path] : [];
  });
}

/** Every relative specifier a file imports, statically, dynamically or by re-export. */
function importedSpecifiers(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.[^'"]+)['"]/g)) found.push(m[1]);
  return found;
}

function layerOf(file: string): string {
  return relative(src, file).split(/[\\/]/)[0];
}

describe('layer rule', () => {
  it('finds imports of every form', () => {
    expect(importedSpecifiers(`import { a } from '../x.js';\nexport { b } from "./y.js";\nconst c = await import('../../z.js');\nimport './side.js';`)).toEqual([
      '../x.js',
      './y.js',
      '../../z.js',
      './side.js',
    ]);
  });

  it('every layer imports only the layers below it', () => {
    const files = sourceFiles(src);
    expect(files.length).toBeGreaterThan(50);
    const violations: string[] = [];
    for (const file of files) {
      const from = layerOf(file);
      expect(Object.keys(ALLOWED), `${relative(src, file)} is in a folder the layer rule does not know`).toContain(from);
      for (const spec of importedSpecifiers(readFileSync(file, 'utf8'))) {
        const to = layerOf(resolve(dirname(file), spec));
        if (to !== from && !ALLOWED[from].includes(to)) violations.push(`${relative(src, file)} imports ${spec} (${from} may import: ${ALLOWED[from].join(', ') || 'nothing of ours'})`);
      }
    }
    expect(violations).toEqual([]);
  });
});

/**
 * The Python package's layers (src/workers/python/llmkit_worker): the contract, the protocol and atomic writes at
 * the bottom import nothing of the package; the trainer core imports those and itself (and lora_tools' merge, the
 * end of a LoRA run), never a job; the Triton model in assets/ runs inside Triton and imports nothing of ours.
 * Jobs sit on top. And no two modules import each other, directly or around a loop, at any depth of a function.
 */
const PACKAGE = resolve(src, 'workers', 'python', 'llmkit_worker');
const PY_BOTTOM = ['jobs', 'protocol', 'atomic'];

function pythonModules(dir = PACKAGE): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.isDirectory()) return e.name === '__pycache__' ? [] : pythonModules(join(dir, e.name));
    return e.name.endsWith('.py') ? [relative(PACKAGE, join(dir, e.name)).replace(/\.py$/, '').replace(/[\\/]/g, '.')] : [];
  });
}

/** The package's modules a module imports (`from .x import y`, `from ..x import y`, `from . import x`), anywhere in it. */
function pythonImports(module: string, text: string, modules: readonly string[]): string[] {
  const found = new Set<string>();
  const here = module.split('.').slice(0, -1);
  for (const m of text.matchAll(/^\s*from\s+(\.+)([\w.]*)\s+import\s+([\w, ()]+)/gm)) {
    const base = here.slice(0, here.length - (m[1].length - 1));
    const target = [...base, ...(m[2] ? m[2].split('.') : [])];
    const names = m[3]
      .replace(/[()]/g, '')
      .split(',')
      .map((n) => n.trim().split(/\s+/)[0]);
    for (const name of m[2] ? [''] : names) {
      const full = [...target, ...(name ? [name] : [])].join('.');
      if (modules.includes(full)) found.add(full);
    }
  }
  return [...found];
}

function pythonAllowed(from: string, to: string): boolean {
  if (PY_BOTTOM.includes(from) || from.startsWith('assets.')) return false;
  if (from.startsWith('trainer.')) return PY_BOTTOM.includes(to) || to.startsWith('trainer.') || to === 'lora_tools';
  return !to.startsWith('assets.');
}

describe('layer rule of the Python package', () => {
  const modules = pythonModules();
  const graph = new Map(modules.map((m) => [m, pythonImports(m, readFileSync(join(PACKAGE, `${m.replace(/\./g, '/')}.py`), 'utf8'), modules)]));

  it('finds relative imports of every form', () => {
    const mods = ['jobs', 'protocol', 'trainer.data', 'trainer.loop'];
    expect(pythonImports('trainer.loop', 'from ..jobs import A\n    from .data import (b, c)\nfrom .. import protocol\nimport os\n', mods).sort()).toEqual(['jobs', 'protocol', 'trainer.data']);
  });

  it('every module imports only what its layer may', () => {
    expect(modules.length).toBeGreaterThan(20);
    const violations = [...graph].flatMap(([from, tos]) => tos.filter((to) => !pythonAllowed(from, to)).map((to) => `${from} imports ${to}`));
    expect(violations).toEqual([]);
  });

  it('has no import cycle', () => {
    const cycles = new Set<string>();
    const walk = (m: string, path: string[]) => {
      const at = path.indexOf(m);
      if (at >= 0) {
        // One name per loop, whichever module it was found from: start at the first in sorted order.
        const loop = path.slice(at);
        const first = loop.indexOf([...loop].sort()[0]);
        return void cycles.add([...loop.slice(first), ...loop.slice(0, first), loop[first]].join(' → '));
      }
      for (const next of graph.get(m) ?? []) walk(next, [...path, m]);
    };
    for (const m of modules) walk(m, []);
    expect([...cycles]).toEqual([]);
  });
});

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

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../../shared/paths.js';
import type { ThreadOptions } from './grammar-spec.js';

/**
 * Starts one of this folder's threads (`grammar-thread`, `compile-thread`). Worker threads load JavaScript only:
 * from the build, the compiled file beside this one; from the TypeScript source (tests), the source bundled, so a
 * test runs the thread it is testing, never a stale build.
 */
export function startThread(name: string, options: ThreadOptions): Worker {
  const here = import.meta.url;
  const file = here.endsWith('.ts') ? bundledSource(name, here) : new URL(`./${name}.js`, here);
  return new Worker(file, { workerData: options });
}

const bundles = new Map<string, URL>();

/**
 * The thread's source and what it imports of ours as one JavaScript file, by esbuild (a devDependency, reached
 * only from the source), once a process: ~0.1 s, then each thread starts as fast as a built one (a TypeScript
 * loader in every thread cost 1.3–1.7 s a start). Named by its content under .tmp/ in the checkout, where the
 * packages it imports resolve.
 */
function bundledSource(name: string, here: string): URL {
  const known = bundles.get(name);
  if (known) return known;
  const { buildSync } = createRequire(here)('esbuild') as typeof import('esbuild');
  const entry = fileURLToPath(new URL(`./${name}.ts`, here));
  const [out] = buildSync({ entryPoints: [entry], bundle: true, packages: 'external', format: 'esm', platform: 'node', target: 'node20', write: false, logLevel: 'error' }).outputFiles;
  const file = join(packageRoot, '.tmp', 'threads', `${name}-${createHash('sha256').update(out.contents).digest('hex').slice(0, 12)}.mjs`);
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(`${file}.${process.pid}`, out.contents);
    renameSync(`${file}.${process.pid}`, file);
  }
  const url = pathToFileURL(file);
  bundles.set(name, url);
  return url;
}

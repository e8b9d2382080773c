import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

const root = fileURLToPath(new URL('../../', import.meta.url));
/**
 * Inside the checkout (ignored by git), so that the built modules find package.json and node_modules above them;
 * one folder a run (the config and this setup run in the same process), so two runs in one checkout do not collide.
 */
const OUT = join(root, '.tmp', `fast-tier-${process.pid}`);
/** The copy of bin/llmkit.js that the fast tier's CLI tests start (test/helpers/cli.ts). */
export const FAST_TIER_BIN = join(OUT, 'bin', 'llmkit.js');

/**
 * The fast tier's build (vitest.unit.config.ts's global setup): esbuild turns src/ into JavaScript in about a
 * second, without type-checking it (lint and `npm run build` do that), next to a copy of bin/llmkit.js, so the
 * tests that start the real CLI run this checkout's source with no `npm run build`. tsc takes a minute here.
 */
export default function setup(): () => void {
  const src = join(root, 'src');
  // src/serve/ui is the browser page (its own tsconfig, built into dist/serve/ui by `npm run build`).
  const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((f) => /(?<!\.d)\.tsx?$/.test(f) && !f.startsWith(join('serve', 'ui')));
  buildSync({ entryPoints: files.map((f) => join(src, f)), outdir: join(OUT, 'dist'), outbase: src, format: 'esm', platform: 'node', target: 'node20', jsx: 'automatic', logLevel: 'error' });
  mkdirSync(join(OUT, 'bin'), { recursive: true });
  copyFileSync(join(root, 'bin', 'llmkit.js'), FAST_TIER_BIN);
  return () => rmSync(OUT, { recursive: true, force: true });
}

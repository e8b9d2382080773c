import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder that holds package.json, found from this file so that it works from src/ (tests) and dist/. */
export const packageRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('llmkit: cannot find package.json above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
})();

/** Where llmkit keeps its Python environment, cached models and logs (LLMKIT_HOME, default ~/.cache/llmkit). */
export function llmkitHome(): string {
  return resolve(process.env.LLMKIT_HOME ?? join(homedir(), '.cache', 'llmkit'));
}

export const pythonSourceDir = join(packageRoot, 'src', 'workers', 'python');
export const workerRequirementsFile = join(pythonSourceDir, 'requirements.txt');
export const recipesDir = join(packageRoot, 'recipes');

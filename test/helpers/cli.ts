import { execa, type Options } from 'execa';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
// The fast tier sets LLMKIT_TEST_BIN to its copy of bin/llmkit.js over a quick build of src/ (fast-tier-build.ts).
const bin = process.env.LLMKIT_TEST_BIN ?? join(root, 'bin', 'llmkit.js');

/** Runs the real CLI (bin/llmkit.js) and never throws on a non-zero exit. */
export function runCli(args: string[], options: Options = {}) {
  return execa('node', [bin, ...args], { reject: false, stdin: 'ignore', ...options });
}

export function tempDir(prefix = 'llmkit-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

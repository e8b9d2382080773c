import { execa, type Options } from 'execa';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Runs the real CLI (bin/llmkit.js over dist/) and never throws on a non-zero exit. */
export function runCli(args: string[], options: Options = {}) {
  return execa('node', ['bin/llmkit.js', ...args], { reject: false, stdin: 'ignore', ...options });
}

export function tempDir(prefix = 'llmkit-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

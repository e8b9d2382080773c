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

/**
 * Runs the CLI's command layer (src/cli/main.ts) in this process, its output and exit code captured: for tests of flag
 * parsing and usage errors, which would otherwise pay a Node start and module load (~0.3 s of CPU) per call. The bin
 * wrapper itself is tested through runCli.
 */
export async function runCliInProcess(args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const { main } = await import('../../src/cli/main.js');
  const out = { stdout: '', stderr: '' };
  const writes = { stdout: process.stdout.write, stderr: process.stderr.write };
  const capture = (stream: 'stdout' | 'stderr') =>
    ((chunk: string | Uint8Array) => {
      out[stream] += String(chunk);
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = capture('stdout');
  process.stderr.write = capture('stderr');
  try {
    return { exitCode: await main(['node', 'llmkit', ...args]), ...out };
  } finally {
    process.stdout.write = writes.stdout;
    process.stderr.write = writes.stderr;
    process.exitCode = undefined;
  }
}

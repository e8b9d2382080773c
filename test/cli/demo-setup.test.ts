import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../helpers/cli.js';

/**
 * A stand-in for python3 whose `pip install` prints pip's "Collecting" lines slowly and then fails, so the test sees
 * what the demo shows during the worker environment's first set-up (a few GB from PyPI) in seconds.
 */
function fakePython(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  const script = `#!/usr/bin/env bash
if [ "$1" = "-c" ]; then echo True; exit 0; fi
if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; exit 0; fi
for p in torch transformers peft onnx; do echo "Collecting $p"; sleep 1.2; done
echo "ERROR: no network in this stand-in"; exit 1
`;
  writeFileSync(join(bin, 'python3'), script);
  chmodSync(join(bin, 'python3'), 0o755);
  return bin;
}

describe('llmkit demo', () => {
  it("shows pip's progress while it creates the worker environment, instead of sitting silent", async () => {
    const home = tempDir();
    const bin = fakePython(home);
    const { LLMKIT_PYTHON: _, ...env } = process.env;
    const r = await runCli(['demo'], { env: { ...env, LLMKIT_HOME: home, PATH: `${bin}:${process.env.PATH}` }, extendEnv: false });
    expect(r.exitCode).toBe(1);
    const lines = r.stderr.split('\n');
    const progress = lines.filter((l) => l.startsWith('demo (worker environment): step '));
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress.some((l) => l.includes('Collecting'))).toBe(true);
    expect(lines.filter(Boolean).at(-1)).toMatch(/^error: pip could not install the worker requirements \(exit 1\)/);
    expect(existsSync(join(home, 'venvs'))).toBe(true);
  }, 60_000);
});

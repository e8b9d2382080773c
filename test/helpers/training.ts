import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Options } from 'execa';
import { runCli } from './cli.js';

/** The rows of a training run's metrics.jsonl. */
export function metrics(out: string): Record<string, any>[] {
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

/** Runs a training command and sends it one Ctrl-C once its first checkpoint is written (a second would quit at once). */
export function interruptedAtFirstCheckpoint(args: string[], options: Options = {}) {
  const child = runCli(args, options);
  let seen = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    if (seen.includes('"kind":"checkpoint"')) return;
    seen += chunk.toString();
    if (seen.includes('"kind":"checkpoint"')) child.kill('SIGINT');
  });
  return child;
}

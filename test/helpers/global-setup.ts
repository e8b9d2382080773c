import { execa } from 'execa';

/** `npm test` makes sure the Python worker environment exists (idempotent: seconds when it does). */
export default async function setup(): Promise<void> {
  const r = await execa('node', ['bin/llmkit.js', 'env', '--setup', '--json'], { reject: false, stdin: 'ignore' });
  if (r.exitCode !== 0) {
    throw new Error(`llmkit env --setup failed (exit ${r.exitCode}):\n${r.stderr.slice(-3000)}`);
  }
}

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { makeOnce } from '../../src/shared/made-once.js';
import { tempDir } from '../helpers/cli.js';

describe('makeOnce', () => {
  it('makes a thing once when several ask at the same time; the others wait for it', async () => {
    const out = join(tempDir('llmkit-made-once-'), 'model');
    let makes = 0;
    const make = async () => {
      makes++;
      await new Promise((r) => setTimeout(r, 300));
      mkdirSync(out);
      return 'made';
    };
    const results = await Promise.all([1, 2, 3].map(() => makeOnce(out, () => existsSync(out), make)));
    expect(makes).toBe(1);
    expect(results.filter((r) => r === 'made')).toHaveLength(1);
    expect(existsSync(`${out}.lock`)).toBe(false);
  });

  it('takes over a lock left by a process that is gone', async () => {
    const out = join(tempDir('llmkit-made-once-'), 'model');
    const gone = (await execa('node', ['-e', 'console.log(process.pid)'])).stdout.trim();
    mkdirSync(`${out}.lock`);
    writeFileSync(join(`${out}.lock`, 'pid'), gone);
    const made = await makeOnce(
      out,
      () => existsSync(out),
      async () => mkdirSync(out),
    );
    expect(existsSync(out)).toBe(true);
    expect(made).toBeUndefined();
  });
});

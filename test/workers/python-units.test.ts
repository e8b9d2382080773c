import { expect, it } from 'vitest';
import { pythonSourceDir } from '../../src/shared/paths.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { runTool } from '../helpers/python-tool.js';
import { tinyModel } from '../helpers/models.js';

/** The Python jobs' own pieces are tested with pytest (test/python/); this runs it as part of `npm test`. */
it('passes every pytest test of the Python jobs, none skipped', async () => {
  const { python } = await requirePythonEnv();
  const env = { PYTHONPATH: pythonSourceDir, LLMKIT_TINY_MODEL: await tinyModel(), OMP_NUM_THREADS: '1' };
  const r = runTool('pytest', ['-q', '-p', 'no:cacheprovider', '-W', 'error::pytest.PytestUnraisableExceptionWarning', 'test/python'], { python, env, stdio: 'pipe' });
  const summary = r.stdout.trim().split('\n').at(-1) ?? '';
  expect(r.status, r.stdout + r.stderr).toBe(0);
  expect(summary).toMatch(/^\d+ passed/);
  expect(summary).not.toMatch(/skipped|xfail/);
  expect(Number(summary.match(/^(\d+) passed/)![1])).toBeGreaterThanOrEqual(10);
});

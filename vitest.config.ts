import { defineConfig } from 'vitest/config';
import SlowestFirst from './test/helpers/slowest-first.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    globalSetup: ['test/helpers/global-setup.ts'],
    // Two files at a time, even on 2 cores: one at a time left a core idle for much of CI (Python imports, process
    // starts, servers waiting on clients). Shared models are made once across files (makeOnce), longest files first.
    fileParallelism: true,
    maxWorkers: 2,
    sequence: { sequencer: SlowestFirst },
    // Hang guards: a test shares the machine with another file's.
    testTimeout: 240_000,
    hookTimeout: 600_000,
  },
});

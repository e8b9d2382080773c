import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The full tier runs two files at a time; the longest ones start first so that neither worker is left with a
 * four-minute file at the end (clean-clone CI, quiet machine, one file at a time: seconds each). A clean clone has no
 * vitest cache of durations to sort by, hence the list; files not in it keep vitest's order, after these.
 */
const SLOWEST = [
  'test/real/quantize.test.ts', // 260
  'test/e2e/families-chain.test.ts', // 192
  'test/e2e/gguf.test.ts', // 108
  'test/cli/tied-checkpoint.test.ts', // 75
  'test/core/families.test.ts', // 67
  'test/core/distill.test.ts', // 67
  'test/core/finetune-distributed.test.ts', // 59
  'test/real/smollm2-training.test.ts', // ~60, estimated (75 s of CPU on one thread, loaded machine)
  'test/cli/finetune.test.ts', // 57
  'test/serve/triton.test.ts', // 55
  'test/core/quantize.test.ts', // 41
  'test/cli/finetune-kill.test.ts', // 35
  'test/core/cuda-setup.test.ts', // 30
  'test/real/smollm2.test.ts', // 29
];

export default class SlowestFirst extends BaseSequencer {
  async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (spec: TestSpecification) => {
      const i = SLOWEST.indexOf(relative(spec.project.config.root, spec.moduleId));
      return i < 0 ? SLOWEST.length : i;
    };
    // Array sort is stable: the rest keep vitest's order.
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}

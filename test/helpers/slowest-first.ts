import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The full tier runs two files at a time; the longest ones start first so that neither worker is left with a
 * four-minute file at the end (clean-clone CI, quiet machine, one file at a time: seconds each). A clean clone has no
 * vitest cache of durations to sort by, hence the list; files not in it keep vitest's order, after these.
 */
const SLOWEST = [
  // Seconds in the fourth session's clean-clone CI (2026-12-07, its first half on a loaded machine: ~2x quiet).
  'test/e2e/families-chain.test.ts', // 514
  'test/real/quantize.test.ts', // 475
  'test/e2e/gguf.test.ts', // 390
  'test/real/smollm2-training.test.ts', // 294
  'test/core/families.test.ts', // 265
  'test/real/smollm2-tied.test.ts', // 153
  'test/core/distill.test.ts', // 140
  'test/core/finetune-distributed.test.ts', // 111
  'test/serve/triton.test.ts', // 89
  'test/cli/tied-checkpoint.test.ts', // 88
  'test/core/quantize.test.ts', // 71
  'test/cli/finetune.test.ts', // 70
  'test/real/smollm2.test.ts', // 53
  'test/cli/finetune-kill.test.ts', // 46
  'test/real/speculative.test.ts', // 33
  'test/engine/ort-binding.test.ts', // 32
  'test/core/cuda-setup.test.ts', // 30
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

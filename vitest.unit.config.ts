import { mkdtempSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';
import { FAST_TIER_BIN } from './test/helpers/fast-tier-build.js';

/**
 * The fast tier (`npm run test:unit`): every test file but those that need Python or a model, for
 * the edit-run loop. No global setup builds the PyTorch environment, and LLMKIT_HOME is an empty folder
 * and LLMKIT_PYTHON a missing file, so a test that reaches for Python or a cached model fails here
 * instead of quietly slowing the tier down. `npm test` runs these files too, with the rest.
 */
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    // These need the Python environment or a model; a new test that does too fails here until listed.
    exclude: [
      'test/cli/finetune-kill.test.ts',
      'test/cli/finetune.test.ts',
      'test/cli/tied-checkpoint.test.ts',
      'test/core/batch-offline.test.ts',
      'test/engine/multi-lora.test.ts',
      'test/engine/float32-scales.test.ts',
      'test/serve/multi-lora.test.ts',
      'test/core/bench.test.ts',
      'test/core/chat-local-backend.test.ts',
      'test/core/chat-plain.test.ts',
      'test/core/cuda-setup.test.ts',
      'test/core/distill.test.ts',
      'test/core/env.test.ts',
      'test/core/export.test.ts',
      'test/core/families.test.ts',
      'test/core/finetune-distributed.test.ts',
      'test/core/gguf-check.test.ts',
      'test/core/import.test.ts',
      'test/core/inspect.test.ts',
      'test/core/quantize.test.ts',
      'test/e2e/batch-expiry.test.ts',
      'test/e2e/batch-replicas.test.ts',
      'test/e2e/batch-restart.test.ts',
      'test/e2e/chat-tmux.test.ts',
      'test/e2e/families-chain.test.ts',
      'test/e2e/gguf.test.ts',
      'test/engine/decoder-session.test.ts',
      'test/engine/detokenizer.test.ts',
      'test/engine/fixed-cache.test.ts',
      'test/engine/generation-scheduler.test.ts',
      'test/engine/step-watchdog.test.ts',
      'test/engine/graph-pruning.test.ts',
      'test/engine/last-position-logits.test.ts',
      'test/engine/ort-binding.test.ts',
      'test/engine/prefix-cache.test.ts',
      'test/engine/speculative-decoding.test.ts',
      'test/real/**',
      'test/serve/batch-api.test.ts',
      'test/serve/batch-python-sdk.test.ts',
      'test/serve/chat-templates.test.ts',
      'test/serve/drain.test.ts',
      'test/serve/errors.test.ts',
      'test/serve/grammar-isolation.test.ts',
      'test/serve/grammar-sandbox.test.ts',
      'test/serve/output-validity.test.ts',
      'test/serve/sdk-followups.test.ts',
      'test/serve/soak.test.ts',
      'test/serve/models.test.ts',
      'test/serve/openai-api.test.ts',
      'test/serve/python-sdk.test.ts',
      'test/serve/quotas-redis.test.ts',
      'test/serve/response-cache.test.ts',
      'test/serve/speculative.test.ts',
      'test/serve/structured-outputs.test.ts',
      'test/serve/tool-calls.test.ts',
      'test/serve/triton.test.ts',
      'test/serve/watchdog.test.ts',
      'test/serve/web-ui.test.ts',
      'test/serve/websocket-plain.test.ts',
      'test/serve/websocket.test.ts',
      'test/workers/job-contract.test.ts',
      'test/workers/python-units.test.ts',
      'test/workers/tensorboard.test.ts',
      'test/workers/tiny-model.test.ts',
      'test/workers/worker-run.test.ts',
    ],
    // No `npm run build`: the CLI tests start a copy of bin/llmkit.js over a one-second esbuild of src/.
    globalSetup: ['test/helpers/fast-tier-build.ts'],
    env: { LLMKIT_HOME: mkdtempSync(join(tmpdir(), 'llmkit-unit-')), LLMKIT_PYTHON: '/nonexistent/python-for-the-fast-tier', LLMKIT_TEST_BIN: FAST_TIER_BIN },
    testTimeout: 20_000,
    // vitest's default (cores - 1) runs one file at a time on a 2-core machine; two halve the tier's wall time there.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // One module graph per worker instead of one per file: these files restore what they patch (mocks, stdout, exit
    // code) and set no process.env, and a fresh fork per file cost about a third of the tier's CPU.
    isolate: false,
  },
});

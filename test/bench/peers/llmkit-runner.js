// One contender of test/bench/peers.js: llmkit's engine (DecoderSession + GenerationScheduler, as `serve`
// runs it) on an exported folder. Reads one JSON request a line on stdin ({prompts: [[ids]], newTokens}) and
// answers one JSON line: prefill time (submit to every row's first token), decode tokens/s per row (after its
// first token), aggregate tokens/s, and the tokens. Usage: node llmkit-runner.js <folder> <threads> [fixed-cache [KEY=VALUE;…]]
// (fixed-cache: the engine's fixed-cache decode path, FixedCacheDecoder + FixedCacheScheduler, on a --gqa export;
// KEY=VALUE: ONNX Runtime session config entries over the binding's defaults, e.g. session.intra_op.allow_spinning=1).
import { createInterface } from 'node:readline';
import { DecoderSession } from '../../../dist/engine/decoder-session.js';
import { FixedCacheDecoder } from '../../../dist/engine/fixed-cache/fixed-cache-decoder.js';
import { FixedCacheScheduler } from '../../../dist/engine/fixed-cache/fixed-cache-scheduler.js';
import { GenerationScheduler } from '../../../dist/engine/generation-scheduler.js';
import { loadExportedModel } from '../../../dist/engine/model-manifest.js';
import { GREEDY } from '../../../dist/engine/sampling.js';

const [folder, threads, path, config] = process.argv.slice(2);
const sessionConfig = config ? Object.fromEntries(config.split(';').map((entry) => entry.split('='))) : undefined;
const model = loadExportedModel(folder);
const contextLength = model.manifest.max_position_embeddings;
const limits = { maxBatch: 16, maxQueue: 64, maxTokensTotal: 16 * contextLength, prefillChunk: 4096 };
const decoder =
  path === 'fixed-cache'
    ? await FixedCacheDecoder.open(model, { provider: 'cpu', threads: Number(threads), rows: limits.maxBatch, capacity: contextLength, sessionConfig })
    : await DecoderSession.open(model, { device: 'cpu', threads: Number(threads), logits: 'last' });
const scheduler = path === 'fixed-cache' ? new FixedCacheScheduler(decoder, limits) : new GenerationScheduler(decoder, limits);

async function generate({ prompts, newTokens }) {
  const started = performance.now();
  const rows = prompts.map(() => ({ times: [], tokens: [] }));
  const done = prompts.map(
    (promptIds, i) =>
      new Promise((resolve, reject) => {
        scheduler.submit({
          promptIds,
          maxTokens: newTokens,
          sampling: GREEDY,
          stopTokenIds: [],
          sink: {
            token(id) {
              rows[i].times.push(performance.now());
              rows[i].tokens.push(id);
              return false;
            },
            end(end) {
              if (end.reason === 'error') reject(end.error);
              else resolve();
            },
          },
        });
      }),
  );
  await Promise.all(done);
  const ended = performance.now();
  return {
    prefillMs: Math.max(...rows.map((r) => r.times[0])) - started,
    decodeTokPerS: rows.map((r) => (1000 * (r.times.length - 1)) / (r.times.at(-1) - r.times[0])),
    totalTokPerS: (1000 * rows.reduce((n, r) => n + r.tokens.length, 0)) / (ended - started),
    tokens: rows.map((r) => r.tokens),
  };
}

for await (const line of createInterface({ input: process.stdin })) {
  process.stdout.write(JSON.stringify(await generate(JSON.parse(line))) + '\n');
}
await decoder.release();

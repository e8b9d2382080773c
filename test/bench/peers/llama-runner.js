// One contender of test/bench/peers.js: llama.cpp through node-llama-cpp (installed by peers.sh in a scratch
// folder, prebuilt CPU binaries) on a GGUF file. Reads one JSON request a line on stdin ({prompts: [[ids]],
// newTokens}; batch 1 only) and answers like llmkit-runner.js. Usage:
// node llama-runner.js <node-llama-cpp folder> <model.gguf> <threads>
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const [scratch, gguf, threads] = process.argv.slice(2);
const { getLlama } = await import(pathToFileURL(join(scratch, 'node_modules', 'node-llama-cpp', 'dist', 'index.js')).href);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const model = await llama.loadModel({ modelPath: gguf });
const context = await model.createContext({ contextSize: 1024, batchSize: 512, threads: Number(threads), sequences: 1 });
const sequence = context.getSequence();

async function generate({ prompts, newTokens }) {
  if (prompts.length !== 1) throw new Error('llama-runner does batch 1 only');
  await sequence.clearHistory();
  const started = performance.now();
  const tokens = [];
  const times = [];
  for await (const token of sequence.evaluate(prompts[0], { temperature: 0 })) {
    times.push(performance.now());
    tokens.push(token);
    if (tokens.length >= newTokens) break;
  }
  const ended = performance.now();
  return {
    prefillMs: times[0] - started,
    decodeTokPerS: [(1000 * (times.length - 1)) / (times.at(-1) - times[0])],
    totalTokPerS: (1000 * tokens.length) / (ended - started),
    tokens: [tokens],
  };
}

for await (const line of createInterface({ input: process.stdin })) {
  process.stdout.write(JSON.stringify(await generate(JSON.parse(line))) + '\n');
}
await context.dispose();
await model.dispose();

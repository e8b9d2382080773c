// llama.cpp's lookup decoding (node-llama-cpp's InputLookupTokenPredictor, prompt lookup like `--draft ngram`)
// against its plain decoding, on the prompts of test/bench/speculative.js: the peer's own speed-up, to put beside
// llmkit's (docs/benchmarks.md, "Speculative decoding"). One process, one context with two sequences (one plain, one
// with the predictor), alternating per prompt and round; batch 1, greedy; the prompts are the chat-templated token
// ids llmkit's tokenizer makes for the export of the same model (the GGUF's vocabulary). Decode speed: tokens after
// the first ÷ time from the first token to the last. The predictor needs the prompt as its input tokens
// (`updateInputTokens`, which LlamaCompletion/LlamaChat call; a bare `sequence.evaluate` never does, so it predicts nothing).
//   node test/bench/peers/llama-lookup.js --gguf FILE --export DIR [--rounds 3] [--threads 2] [--new 128]
//        [--llama $LLMKIT_HOME/peers/node-llama-cpp-3.21.1] [--prompts test/bench/speculative-prompts.json]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadExportedModel } from '../../../dist/engine/model-manifest.js';
import { ModelTokenizer } from '../../../dist/engine/tokenizer.js';
import { llmkitHome } from '../../../dist/shared/paths.js';

const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const here = new URL('.', import.meta.url).pathname;
const scratch = flag('llama', join(llmkitHome(), 'peers', 'node-llama-cpp-3.21.1'));
const { getLlama, InputLookupTokenPredictor } = await import(pathToFileURL(join(scratch, 'node_modules', 'node-llama-cpp', 'dist', 'index.js')).href);
const rounds = Number(flag('rounds', '3'));
const newTokens = Number(flag('new', '128'));
const threads = Number(flag('threads', '2'));

const tokenizer = await ModelTokenizer.load(flag('export'));
const prompts = JSON.parse(readFileSync(flag('prompts', join(here, '..', 'speculative-prompts.json')), 'utf8')).map((p) => tokenizer.encodeChat([{ role: 'user', content: p }]));
const eos = new Set(loadExportedModel(flag('export')).manifest.eos_token_ids);

const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const model = await llama.loadModel({ modelPath: flag('gguf') });
const context = await model.createContext({ contextSize: 2048, batchSize: 512, threads, sequences: 2 });
const predictor = new InputLookupTokenPredictor({ patternLength: { min: 2 }, predictionLength: { max: 8 } });
const plain = context.getSequence();
const lookup = context.getSequence({ tokenPredictor: predictor });

async function run(sequence, prompt) {
  await sequence.clearHistory();
  sequence.tokenPredictor?.updateInputTokens?.(prompt.slice());
  const tokens = [];
  const times = [];
  for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
    if (eos.has(token)) break;
    times.push(performance.now());
    tokens.push(token);
    if (tokens.length >= newTokens) break;
  }
  return { tokens, tokPerS: tokens.length > 1 ? (1000 * (tokens.length - 1)) / (times.at(-1) - times[0]) : NaN };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const speeds = { plain: [], lookup: [] };
const roundRatios = [];
let identical = 0;
for (let r = 0; r < rounds; r++) {
  const logs = [];
  for (const [i, prompt] of prompts.entries()) {
    const order = (r + i) % 2 ? ['lookup', 'plain'] : ['plain', 'lookup'];
    const out = {};
    for (const k of order) out[k] = await run(k === 'plain' ? plain : lookup, prompt);
    speeds.plain.push(out.plain.tokPerS);
    speeds.lookup.push(out.lookup.tokPerS);
    logs.push(Math.log(out.lookup.tokPerS / out.plain.tokPerS));
    if (r === 0 && out.plain.tokens.join() === out.lookup.tokens.join()) identical++;
  }
  roundRatios.push(Math.exp(logs.reduce((a, b) => a + b, 0) / logs.length));
  console.error(`round ${r + 1}: ${roundRatios.at(-1).toFixed(2)}x`);
}
const stats = lookup.tokenPredictions;
console.log(
  JSON.stringify(
    {
      peer: 'llama.cpp (node-llama-cpp 3.21.1, InputLookupTokenPredictor, prediction 1..8 tokens, pattern >= 2)',
      gguf: flag('gguf'),
      threads,
      prompts: prompts.length,
      rounds,
      newTokens,
      plainTokensPerSecond: Number(median(speeds.plain).toFixed(2)),
      lookupTokensPerSecond: Number(median(speeds.lookup).toFixed(2)),
      speedup: Number(median(roundRatios).toFixed(3)),
      speedupRange: [Math.min(...roundRatios), Math.max(...roundRatios)].map((x) => Number(x.toFixed(3))),
      predictions: stats,
      acceptance: stats.validated + stats.refuted ? Number((stats.validated / (stats.validated + stats.refuted)).toFixed(3)) : null,
      identicalOutputs: `${identical}/${prompts.length}`,
      load: readFileSync('/proc/loadavg', 'utf8').trim(),
    },
    null,
    2,
  ),
);
await context.dispose();
await model.dispose();

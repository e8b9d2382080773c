// The peer of test/bench/speculative.js: llama.cpp's prompt-lookup decoding (node-llama-cpp's
// InputLookupTokenPredictor, its defaults) against its plain decoding on the same GGUF, prompts and threads, in
// one process, alternating per prompt as speculative.js does. Prompts are rendered with the llmkit export's chat
// template and tokenized by it (the GGUF has the same vocabulary). Greedy, batch 1.
//   node test/bench/speculative-llama.js --gguf SmolLM2-135M-Instruct.Q4_1.gguf --model EXPORT_DIR
//        [--rounds 3] [--threads 2] [--new 128] [--node-llama-cpp DIR]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const here = new URL('.', import.meta.url).pathname;
const home = process.env.LLMKIT_HOME ?? join(process.env.HOME, '.cache', 'llmkit');
const scratch = flag('node-llama-cpp', join(home, 'peers', 'node-llama-cpp-3.21.1'));
const { getLlama, InputLookupTokenPredictor } = await import(pathToFileURL(join(scratch, 'node_modules', 'node-llama-cpp', 'dist', 'index.js')).href);
const { ModelTokenizer } = await import(join(here, '..', '..', 'dist', 'engine', 'tokenizer.js'));
const [rounds, threads, maxTokens] = ['rounds', 'threads', 'new'].map((n, i) => Number(flag(n, ['3', '2', '128'][i])));

const tokenizer = await ModelTokenizer.load(flag('model'));
const prompts = JSON.parse(readFileSync(flag('prompts', join(here, 'speculative-prompts.json')), 'utf8')).map((p) => tokenizer.encodeChat([{ role: 'user', content: p }]));
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const model = await llama.loadModel({ modelPath: flag('gguf') });
const eos = model.tokens.eos;
const contexts = {
  plain: await model.createContext({ contextSize: 1024, threads, sequences: 1 }),
  lookup: await model.createContext({ contextSize: 1024, threads, sequences: 1 }),
};
const sequences = { plain: contexts.plain.getSequence(), lookup: contexts.lookup.getSequence({ tokenPredictor: new InputLookupTokenPredictor() }) };

async function run(which, ids) {
  const sequence = sequences[which];
  await sequence.clearHistory();
  const tokens = [];
  const times = [];
  for await (const token of sequence.evaluate(ids, { temperature: 0 })) {
    if (token === eos) break;
    times.push(performance.now());
    tokens.push(token);
    if (tokens.length >= maxTokens) break;
  }
  return { tokens, tokPerS: ((tokens.length - 1) * 1000) / (times.at(-1) - times[0]) };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ratios = [];
const speeds = { plain: [], lookup: [] };
let mismatches = 0;
for (let round = 0; round < rounds; round++) {
  const logs = [];
  for (const [i, ids] of prompts.entries()) {
    const out = {};
    for (const which of (round + i) % 2 ? ['lookup', 'plain'] : ['plain', 'lookup']) out[which] = await run(which, ids);
    if (out.plain.tokens.join() !== out.lookup.tokens.join()) mismatches++;
    speeds.plain.push(out.plain.tokPerS);
    speeds.lookup.push(out.lookup.tokPerS);
    logs.push(Math.log(out.lookup.tokPerS / out.plain.tokPerS));
  }
  ratios.push(Math.exp(logs.reduce((a, b) => a + b, 0) / logs.length));
  console.error(`round ${round + 1}: ${ratios.at(-1).toFixed(2)}x`);
}
const stats = sequences.lookup.tokenPredictions;
console.log(
  JSON.stringify(
    {
      peer: 'llama.cpp (node-llama-cpp 3.21.1) InputLookupTokenPredictor',
      threads,
      rounds,
      plainTokPerS: median(speeds.plain),
      lookupTokPerS: median(speeds.lookup),
      speedup: median(ratios),
      speedupRange: [Math.min(...ratios), Math.max(...ratios)],
      predictions: stats,
      identicalOutputs: mismatches === 0,
      load: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    },
    null,
    2,
  ),
);
process.exit(0);

// Run by scoreGguf (gguf-compare.ts) as its own process, as llama.cpp may abort the process it runs in:
//   node gguf-score.js NODE_LLAMA_CPP_ENTRY FILE.gguf WINDOWS.json
// WINDOWS.json: { windows: number[][], referenceTop1: number[], threads: number }. Each window is scored from an empty
// context with llama.cpp's full next-token distribution at every position but the last; prints one JSON line:
// { perplexity, top1Agreement, positions }.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface Evaluated {
  next: { probabilities?: Map<number, number> };
}
interface LlamaModel {
  createContext(options: object): Promise<{ getSequence(): { controlledEvaluate(input: unknown[]): Promise<Evaluated[]> }; dispose(): Promise<void> }>;
  dispose(): Promise<void>;
}
interface NodeLlamaCpp {
  getLlama(options: object): Promise<{ loadModel(options: object): Promise<LlamaModel> }>;
  LlamaLogLevel: Record<string, string>;
}

const [entry, file, input] = process.argv.slice(2);
const { windows, referenceTop1, threads } = JSON.parse(readFileSync(input, 'utf8')) as { windows: number[][]; referenceTop1: number[]; threads: number };
const llamaCpp = (await import(pathToFileURL(entry).href)) as NodeLlamaCpp;
const llama = await llamaCpp.getLlama({ gpu: false, build: 'never', logLevel: llamaCpp.LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
// The distribution as the model gives it: no temperature, top-k, top-p or min-p applied.
const untouched = { temperature: 1, topK: 0, topP: 1, minP: 0 };
let nll = 0;
let agree = 0;
let positions = 0;
for (const window of windows) {
  const context = await model.createContext({ contextSize: Math.max(512, window.length), threads });
  const steps = window.map((token, i) => (i < window.length - 1 ? [token, { generateNext: { probabilities: true, options: untouched } }] : token));
  const results = await context.getSequence().controlledEvaluate(steps);
  await context.dispose();
  for (let i = 0; i < window.length - 1; i++) {
    const probabilities = results[i].next.probabilities ?? new Map<number, number>();
    nll -= Math.log(probabilities.get(window[i + 1]) ?? Number.MIN_VALUE);
    let best = -1;
    let bestP = -1;
    for (const [token, p] of probabilities) {
      if (p > bestP) [best, bestP] = [token, p];
    }
    if (best === referenceTop1[positions]) agree += 1;
    positions += 1;
  }
}
await model.dispose();
process.stdout.write(`${JSON.stringify({ perplexity: Math.exp(nll / positions), top1Agreement: agree / positions, positions })}\n`);

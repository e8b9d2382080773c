// llama.cpp (node-llama-cpp, installed by the GGUF tests under LLMKIT_HOME/peers) scored on measure.py's windows:
// perplexity from the full next-token distributions, top-1 agreement and mean KL against the fp32 ONNX export.
//   node gguf-measure.mjs WORK_DIR model.gguf...
import { readFileSync } from 'node:fs';
const home = process.env.LLMKIT_HOME ?? `${process.env.HOME}/.cache/llmkit`;
const nodeLlamaCpp = () => import(`${home}/peers/node-llama-cpp-3.21.1/node_modules/node-llama-cpp/dist/index.js`);
const [work, ...files] = process.argv.slice(2);
const ids = JSON.parse(readFileSync(`${work}/ids.json`, 'utf8'));
const W = ids[0].length;
const ref = new Float32Array(readFileSync(`${work}/ref_lp.bin`).buffer.slice(0));
const V = ref.length / (ids.length * (W - 1));
const llamaCpp = await nodeLlamaCpp();
const llama = await llamaCpp.getLlama({ gpu: false, build: 'never', logLevel: llamaCpp.LlamaLogLevel.error });
const untouched = { temperature: 1, topK: 0, topP: 1, minP: 0 };
for (const file of files) {
  const model = await llama.loadModel({ modelPath: file });
  let nll = 0, agree = 0, kl = 0, n = 0;
  for (let w = 0; w < ids.length; w++) {
    const window = ids[w];
    const context = await model.createContext({ contextSize: 512, threads: 2 });
    const results = await context.getSequence().controlledEvaluate(window.map((t, i) => (i < window.length - 1 ? [t, { generateNext: { probabilities: true, options: untouched } }] : t)));
    await context.dispose();
    for (let i = 0; i < W - 1; i++) {
      const probs = results[i].next.probabilities;
      nll -= Math.log(probs.get(window[i + 1]) ?? 0);
      const off = (w * (W - 1) + i) * V;
      let best = -1, bestP = -1, refBest = 0;
      for (let v = 0; v < V; v++) if (ref[off + v] > ref[off + refBest]) refBest = v;
      for (const [t, p] of probs) if (p > bestP) { bestP = p; best = t; }
      if (best === refBest) agree++;
      for (let v = 0; v < V; v++) { const lr = ref[off + v]; kl += Math.exp(lr) * (lr - Math.log(Math.max(probs.get(v) ?? 0, 1e-30))); }
      n++;
    }
  }
  console.log(`${file}: ppl ${Math.exp(nll / n).toFixed(3)} top1 ${(100 * agree / n).toFixed(1)}% KL ${(kl / n).toExponential(2)} over ${n} positions`);
  await model.dispose();
}

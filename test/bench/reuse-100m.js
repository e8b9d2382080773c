// Reuse benchmarks of docs/benchmarks.md ("Reuse: prefix KV cache and response cache"), on an exported model:
//
// 1. Prefix reuse: a 10-turn chat with a 500-token system prompt, each turn resending the whole conversation
//    (as chat clients do), 8 greedy tokens per answer; time to first token per turn on two engines over the
//    same folder, one with the prefix cache (--prefix-cache-mb 256) and one without (0), taking turns which
//    goes first. Each round is a new chat (new system prompt). Also checks both give the same tokens.
// 2. Response cache: the server with --cache; a greedy request (64 tokens), then the same request again;
//    the second's time over the first's. Each round asks a new question.
//
// Usage, in the repo root after `npm run build` (test/bench/serve-100m.sh makes and exports the 100m model):
//   node test/bench/reuse-100m.js <exported-model-folder> [--rounds 5]
import { performance } from 'node:perf_hooks';
import { startServer } from '../../dist/core/serve.js';
import { LocalEngine } from '../../dist/engine/local-engine.js';
import { Random } from '../../dist/engine/random.js';
import { modelArgs } from './model-args.js';

const { folder, flag } = modelArgs('node test/bench/reuse-100m.js <exported-model-folder> [--rounds 5]');
const rounds = Number(flag('rounds', '5'));
const TURNS = 10;
const SYSTEM_TOKENS = 500;
const ANSWER_TOKENS = 8;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const range = (xs) => `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;
const WORDS = 'the a river stone light market winter garden letter north quiet engine paper silver answer window'.split(' ');
const words = (random, n) => Array.from({ length: n }, () => WORDS[Math.floor(random.next() * WORDS.length)]).join(' ');

const engines = { reuse: await LocalEngine.open(folder, { device: 'cpu', prefixCacheMb: 256 }), fresh: await LocalEngine.open(folder, { device: 'cpu', prefixCacheMb: 0 }) };
const { tokenizer } = engines.reuse;

/** A system prompt of exactly SYSTEM_TOKENS tokens. */
function systemPrompt(random) {
  const ids = tokenizer.encode(words(random, SYSTEM_TOKENS));
  return tokenizer.decode(ids.slice(0, SYSTEM_TOKENS));
}

// ttft[name][turn] = TTFTs (ms) over rounds
const ttft = { reuse: [], fresh: [] };
let mismatches = 0;
const promptTokens = [];
for (let round = 0; round < rounds; round++) {
  const random = new Random(round + 1);
  const messages = [{ role: 'system', content: systemPrompt(random) }];
  for (let turn = 0; turn < TURNS; turn++) {
    messages.push({ role: 'user', content: words(random, 2) + '?' });
    const promptIds = tokenizer.encodeChat(messages);
    if (round === 0) promptTokens.push(promptIds.length);
    const order = (round + turn) % 2 ? ['fresh', 'reuse'] : ['reuse', 'fresh'];
    const answers = {};
    for (const name of order) {
      const { text, end } = await engines[name].complete({ promptIds, maxTokens: ANSWER_TOKENS, ignoreEos: true });
      (ttft[name][turn] ??= []).push(end.timeToFirstTokenMs);
      answers[name] = text;
    }
    if (answers.reuse !== answers.fresh) mismatches++;
    messages.push({ role: 'assistant', content: answers.reuse });
  }
}
const scheduler = engines.reuse.scheduler;
console.log(`prefix reuse: ${rounds} chats of ${TURNS} turns, ${SYSTEM_TOKENS}-token system prompt, ${ANSWER_TOKENS} greedy tokens per answer; prompt tokens per turn ${promptTokens.join(', ')}`);
console.log(`reused ${scheduler.prefixes.reusedTokens} prompt tokens in ${scheduler.prefixes.hits} hits; answers that differ with reuse: ${mismatches} of ${rounds * TURNS}`);
console.log('turn  TTFT without reuse ms (median, range)   with reuse ms (median, range)   speedup (median, range)');
const speedups = [];
for (let turn = 0; turn < TURNS; turn++) {
  const ratios = ttft.fresh[turn].map((f, r) => f / ttft.reuse[turn][r]);
  if (turn > 0) speedups.push(...ratios);
  console.log(
    `${String(turn + 1).padStart(4)}  ${median(ttft.fresh[turn]).toFixed(1).padStart(8)} (${range(ttft.fresh[turn])})`.padEnd(44) +
      `${median(ttft.reuse[turn]).toFixed(1).padStart(8)} (${range(ttft.reuse[turn])})`.padEnd(34) +
      `×${median(ratios).toFixed(2)} (${range(ratios)})`,
  );
}
console.log(`turns 2–10: TTFT without reuse / with reuse ×${median(speedups).toFixed(2)} (range ${range(speedups)})`);
await engines.reuse.close();
await engines.fresh.close();

const server = await startServer({ models: [`m=${folder}`], host: '127.0.0.1', port: 0, device: 'cpu', cache: true, prefixCacheMb: 0, log: () => {} });
const ask = async (content) => {
  const started = performance.now();
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content }], max_tokens: 64, temperature: 0, ignore_eos: true }),
  });
  const body = await res.json();
  return { ms: performance.now() - started, cache: res.headers.get('x-llmkit-cache'), text: body.choices[0].message.content };
};
const cache = { miss: [], hit: [], ratio: [] };
let same = 0;
for (let round = 0; round < rounds; round++) {
  const question = `Question ${round}: ${words(new Random(100 + round), 12)}?`;
  const first = await ask(question);
  const second = await ask(question);
  if (first.cache !== 'miss' || second.cache !== 'hit') throw new Error(`expected miss then hit, got ${first.cache} then ${second.cache}`);
  if (second.text === first.text) same++;
  cache.miss.push(first.ms);
  cache.hit.push(second.ms);
  cache.ratio.push(second.ms / first.ms);
}
await server.drain();
console.log(
  `response cache: ${rounds} rounds, 64 greedy tokens; first (miss) ${median(cache.miss).toFixed(1)} ms (${range(cache.miss)}), second (hit) ${median(cache.hit).toFixed(2)} ms (${Math.min(...cache.hit).toFixed(2)}–${Math.max(...cache.hit).toFixed(2)}); second / first ${median(cache.ratio).toFixed(4)} (${Math.min(...cache.ratio).toFixed(4)}–${Math.max(...cache.ratio).toFixed(4)}); same text ${same} of ${rounds}`,
);

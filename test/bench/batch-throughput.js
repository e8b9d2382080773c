// Offline batch throughput against the server's best: the same N requests (chat, EOS ignored, so every one makes
// exactly --max-tokens tokens) run by `llmkit batch MODEL` in its own process, and sent to one `llmkit serve` of the
// same model by c clients at once for each c of --concurrency, in alternating rounds on the same threads. Tokens/s
// is generated tokens over the run's wall time (offline: from its --json summary, model loading left out). Prints
// each contender's median and range over rounds, and offline ÷ the best server level, round by round.
//
//   node test/bench/batch-throughput.js <exported-model-folder> [--rounds 3] [--lines 64] [--max-tokens 64]
//        [--concurrency 4,8,16,32] [--max-batch 16] [--threads 2]
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { BENCH_PROMPTS } from '../../dist/core/bench/run.js';
import { modelArgs } from './model-args.js';
import { startServe } from './serve-process.js';

const { folder, flag } = modelArgs('node test/bench/batch-throughput.js <exported-model-folder> [--rounds 3] [--lines 64] [--max-tokens 64] [--concurrency 4,8,16,32]');
const rounds = Number(flag('rounds', '3'));
const count = Number(flag('lines', '64'));
const maxTokens = Number(flag('max-tokens', '64'));
const levels = flag('concurrency', '4,8,16,32').split(',').map(Number);
const maxBatch = flag('max-batch', '16');
const threads = flag('threads', '2');

const dir = mkdtempSync(join(tmpdir(), 'llmkit-batch-bench-'));
// Each run's prompts carry a tag of their own: the server keeps finished prompts in its prefix cache, and a server
// that saw the same prompts in the runs before would skip their prefill where a new `llmkit batch` process cannot.
// Within a run the eight prompts repeat, for both alike.
const body = (i, round) => ({
  model: 'bench',
  messages: [{ role: 'user', content: `(${round}) ${BENCH_PROMPTS[i % BENCH_PROMPTS.length]}` }],
  max_tokens: maxTokens,
  ignore_eos: true,
  temperature: 0,
});
const input = join(dir, 'in.jsonl');

const { url, child: server } = await startServe([`bench=${folder}`, '--port', '0', '--max-batch', maxBatch, '--threads', threads, '--device', 'cpu', '--data-dir', join(dir, 'data')]);

async function offline(round) {
  writeFileSync(input, Array.from({ length: count }, (_, i) => JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/chat/completions', body: body(i, round) })).join('\n'));
  const args = ['--json', 'batch', `bench=${folder}`, '-i', input, '-o', join(dir, 'out.jsonl'), '--restart', '--max-batch', maxBatch, '--threads', threads, '--device', 'cpu'];
  const r = await execa(process.execPath, ['bin/llmkit.js', ...args], { stdin: 'ignore' });
  const summary = JSON.parse(r.stdout);
  if (summary.succeeded !== count) throw new Error(`llmkit batch answered ${summary.succeeded} of ${count}`);
  return summary.tokensPerSecond;
}

/** The N requests through c clients at once (each takes the next request when its last one is answered). */
async function served(c, round) {
  let next = 0;
  let tokens = 0;
  const started = performance.now();
  const client = async () => {
    while (next < count) {
      const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body(next++, round)) });
      if (!res.ok) throw new Error(`the server answered ${res.status}`);
      tokens += (await res.json()).usage.completion_tokens;
    }
  };
  await Promise.all(Array.from({ length: c }, client));
  return tokens / ((performance.now() - started) / 1000);
}

const results = new Map([['offline', []], ...levels.map((c) => [`server c=${c}`, []])]);
const contenders = [['offline', offline], ...levels.map((c) => [`server c=${c}`, (round) => served(c, round)])];
await served(levels[0], 'warm'); // warm-up
for (let round = 0; round < rounds; round++) {
  for (const [name, run] of round % 2 ? [...contenders].reverse() : contenders) {
    // A tag per contender and round, of one length for all: no run finds another's prompts in a cache.
    results.get(name).push(await run(`r${round}c${contenders.findIndex(([n]) => n === name)}`));
    process.stderr.write(`round ${round + 1}/${rounds} ${name}: ${results.get(name).at(-1).toFixed(1)} tok/s\n`);
  }
}
server.kill('SIGTERM');
await server;

// (Of an even count, the mean of the middle two: with 4 rounds the upper middle alone flattered whichever side led.)
const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const f = (n) => n.toFixed(1);
console.log(`${folder}: ${count} requests × ${maxTokens} tokens, --max-batch ${maxBatch}, --threads ${threads}, ${rounds} rounds`);
for (const [name, xs] of results) console.log(`${name.padEnd(14)} ${f(median(xs))} tok/s (${f(Math.min(...xs))}–${f(Math.max(...xs))})`);
const best = levels.map((c) => `server c=${c}`).reduce((a, b) => (median(results.get(b)) > median(results.get(a)) ? b : a));
const ratios = results.get('offline').map((x, i) => x / results.get(best)[i]);
console.log(`offline ÷ best server level (${best}): median ${median(ratios).toFixed(2)}× (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}), round by round`);

// Interactive latency behind a batch job: one `llmkit serve`, and in alternating rounds a phase on the idle server
// and a phase while a large batch (/v1/batches) keeps every row of the engine busy. In each phase, interactive
// streaming chat requests are sent one at a time at random moments; their time to first token (TTFT) is compared,
// and their inter-token gap while the batch runs (one decode step of the full batch) is the yardstick the issue
// sets: an interactive request should wait no more than one decode step longer for its first token.
//
//   node test/bench/batch-ttft.js <exported-model-folder> [--rounds 4] [--requests 8] [--max-batch 16] [--threads 2]
import OpenAI, { toFile } from 'openai';
import { BENCH_PROMPTS } from '../../dist/core/bench/run.js';
import { percentile } from '../../dist/core/bench/client.js';
import { modelArgs } from './model-args.js';
import { startServe } from './serve-process.js';

const { folder, flag } = modelArgs('node test/bench/batch-ttft.js <exported-model-folder> [--rounds 4] [--requests 8] [--max-batch 16] [--threads 2]');
const rounds = Number(flag('rounds', '4'));
const requests = Number(flag('requests', '8'));
const maxBatch = Number(flag('max-batch', '16'));

const { url, child } = await startServe([`bench=${folder}`, '--port', '0', '--max-batch', String(maxBatch), '--threads', flag('threads', '2'), '--data-dir', `/tmp/llmkit-batch-ttft-${process.pid}`]);
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
// Batch lines as long as the context allows (up to 512 tokens), so that none finishes within a phase.
const context = (await client.models.list()).data[0].context_length;
const lineTokens = Math.min(512, context - 64);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * One streaming request, greedy, with logprobs: every token then sends a chunk, even one whose text is empty (a
 * random-weight model samples special and partial-UTF-8 tokens), so TTFT is the first token's, not the first letter's.
 */
async function timedTokens(body) {
  const sent = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true, temperature: 0, logprobs: true }),
  });
  if (!res.ok) throw new Error(`the server answered ${res.status}: ${await res.text()}`);
  const times = [];
  let buffer = '';
  for await (const bytes of res.body) {
    buffer += Buffer.from(bytes).toString('utf8');
    for (let cut; (cut = buffer.indexOf('\n\n')) >= 0; buffer = buffer.slice(cut + 2)) {
      const event = buffer.slice(0, cut).replace(/^data: /, '');
      if (event === '[DONE]') continue;
      const tokens = JSON.parse(event).choices[0]?.logprobs?.content?.length ?? 0;
      for (let i = 0; i < tokens; i++) times.push(performance.now());
    }
  }
  return { ttftMs: times[0] - sent, gapsMs: times.slice(1).map((t, i) => t - times[i]) };
}
const gauge = async (name) => Number((await (await fetch(`${url}/metrics`)).text()).match(new RegExp(`^${name}\\{[^}]*\\} (\\d+)`, 'm'))?.[1] ?? 0);

/** A batch that outlasts a phase: more lines than rows, each long; cancelled when the phase ends. */
async function startBatch(round) {
  const lines = Array.from({ length: maxBatch * 4 }, (_, i) =>
    JSON.stringify({
      custom_id: `r${round}-${i}`,
      method: 'POST',
      url: '/v1/chat/completions',
      body: { model: 'bench', messages: [{ role: 'user', content: BENCH_PROMPTS[i % BENCH_PROMPTS.length] }], max_tokens: lineTokens, ignore_eos: true },
    }),
  );
  const file = await client.files.create({ file: await toFile(Buffer.from(lines.join('\n')), 'load.jsonl'), purpose: 'batch' });
  const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  // Every row busy before the first interactive request.
  while ((await gauge('llmkit_running_batch_size')) < maxBatch) await sleep(20);
  return batch.id;
}

async function phase(withBatch, round, results) {
  const batchId = withBatch ? await startBatch(round) : undefined;
  for (let i = 0; i < requests; i++) {
    // At a random moment, so arrivals do not line up with the decode steps.
    await sleep(50 + Math.random() * 150);
    // Each prompt made unique by a leading tag: no request's first token comes from a prefix-cache hit, in either phase.
    const content = `(${round}${withBatch ? 'b' : 'i'}${i}) ${BENCH_PROMPTS[(round + i) % BENCH_PROMPTS.length]}`;
    const t = await timedTokens({ model: 'bench', messages: [{ role: 'user', content }], max_tokens: 16, ignore_eos: true });
    results.ttft.push(t.ttftMs);
    (results.at ??= []).push(`${round}:${i}`);
    results.gaps.push(...t.gapsMs);
  }
  if (batchId) {
    await client.batches.cancel(batchId);
    while ((await client.batches.retrieve(batchId)).status !== 'cancelled') await sleep(20);
  }
}

const idle = { ttft: [], gaps: [] };
const busy = { ttft: [], gaps: [] };
await phase(false, -1, { ttft: [], gaps: [] }); // warm-up
for (let round = 0; round < rounds; round++) {
  const order = round % 2 ? [true, false] : [false, true];
  for (const withBatch of order) {
    await phase(withBatch, round, withBatch ? busy : idle);
    process.stderr.write(`round ${round + 1}/${rounds} ${withBatch ? 'with batch' : 'idle'}: done\n`);
  }
}
child.kill('SIGTERM');
await child;

const f = (n) => n.toFixed(1);
const step = percentile(busy.gaps, 50);
console.log(`${folder}, --max-batch ${maxBatch}, ${rounds} rounds × ${requests} interactive requests per phase`);
console.log(`TTFT idle:        p50 ${f(percentile(idle.ttft, 50))} ms, p95 ${f(percentile(idle.ttft, 95))} ms`);
console.log(`TTFT with batch:  p50 ${f(percentile(busy.ttft, 50))} ms, p95 ${f(percentile(busy.ttft, 95))} ms`);
console.log(`one decode step of the full batch (inter-token p50 with batch): ${f(step)} ms; idle inter-token p50 ${f(percentile(idle.gaps, 50))} ms`);
// Which requests make the tail (round:index in its phase; index 0 comes first after the batch took every row).
const slowest = (r) =>
  r.ttft
    .map((ms, k) => [ms, r.at[k]])
    .sort((a, b) => b[0] - a[0])
    .slice(0, 4)
    .map(([ms, at]) => `${f(ms)} ms (${at})`)
    .join(', ');
console.log(`slowest TTFT idle: ${slowest(idle)}; with batch: ${slowest(busy)}`);
const extra = percentile(busy.ttft, 95) - percentile(idle.ttft, 95);
console.log(`TTFT p95 with batch − idle: ${f(extra)} ms = ${(extra / step).toFixed(2)} decode steps (target ≤ 1)`);

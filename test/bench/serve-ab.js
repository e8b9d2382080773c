// Two builds of llmkit serving the same model side by side, driven like `llmkit bench` drives one (c streaming
// clients at once, prompts dealt round-robin from the bench's eight, 128 tokens each with EOS ignored), in
// alternating rounds so that load from other processes falls on both alike: how a change to the engine or the
// scheduler moves aggregate tokens/s, TTFT and inter-token percentiles on a shared machine. Prints each build's
// figures (tokens/s: median and range over rounds; percentiles over all requests) and B ÷ A tokens/s round by
// round, and the server process's CPU time per 1,000 tokens (Linux: /proc; with --threads 1 ONNX Runtime does not
// spin, so this is the work a wave costs, which the machine's load does not change much, unlike its wall time). A build is a checkout's root after `npm run build`; to get main's:
//   git archive main | tar -x -C /tmp/main && ln -s $PWD/node_modules /tmp/main/ && npx tsc -p /tmp/main
//
//   node test/bench/serve-ab.js <exported-model-folder> --a /tmp/main [--b .] [--rounds 6] [--concurrency 1,8,16]
//        [--max-tokens 128] [--threads 2]
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { BENCH_PROMPTS } from '../../dist/core/bench/run.js';
import { percentile, timedChatStream } from '../../dist/core/bench/client.js';
import { modelArgs } from './model-args.js';
import { startServe } from './serve-process.js';

const { folder, flag } = modelArgs('node test/bench/serve-ab.js <exported-model-folder> --a <build root> [--b .] [--rounds 6] [--concurrency 1,8,16]');
const rounds = Number(flag('rounds', '6'));
const levels = flag('concurrency', '1,8,16').split(',').map(Number);
const maxTokens = Number(flag('max-tokens', '128'));

/** `llmkit serve` from one build, as `llmkit bench` starts it. */
async function serve(root) {
  const { url, child } = await startServe([`bench=${folder}`, '--port', '0', '--max-batch', String(Math.max(...levels)), '--prefix-cache-mb', '0', '--threads', flag('threads', '2')], root);
  return { url, child };
}

const contenders = [];
for (const [name, root] of [
  ['A', resolve(flag('a', '.'))],
  ['B', resolve(flag('b', '.'))],
]) {
  contenders.push({ name, root, ...(await serve(root)), results: new Map(levels.map((c) => [c, []])) });
}
/** CPU seconds the process has used (user + system), from /proc/<pid>/stat. */
const cpuSeconds = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
const request = (i) => ({ model: 'bench', messages: [{ role: 'user', content: BENCH_PROMPTS[i % BENCH_PROMPTS.length] }], max_tokens: maxTokens, ignore_eos: true });

for (let round = 0; round <= rounds; round++) {
  for (const c of levels) {
    for (const k of round % 2 ? [...contenders].reverse() : contenders) {
      const [sent, cpu] = [performance.now(), cpuSeconds(k.child.pid)];
      const timings = await Promise.all(Array.from({ length: c }, (_, j) => timedChatStream(k.url, request(round * c + j))));
      const seconds = (performance.now() - sent) / 1000;
      const tokens = timings.reduce((n, t) => n + t.completionTokens, 0);
      if (round > 0) k.results.get(c).push({ tokensPerSecond: tokens / seconds, cpuMsPer1k: ((cpuSeconds(k.child.pid) - cpu) * 1e6) / tokens, timings });
    }
  }
  console.error(round ? `round ${round}/${rounds}` : 'warm-up round');
}

const fmt = (xs, digits = 1) => `${percentile(xs, 50).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
console.log(`${rounds} alternating rounds, ${maxTokens} tokens a request; A = ${contenders[0].root}, B = ${contenders[1].root}`);
console.log('| concurrency | build | tokens/s | server CPU ms per 1k tokens | TTFT p50 / p95 ms | ITL p50 / p95 ms | ITL p95 ÷ p50 |');
console.log('|---|---|---|---|---|---|---|');
for (const c of levels) {
  for (const k of contenders) {
    const runs = k.results.get(c);
    const ttft = runs.flatMap((r) => r.timings.map((t) => t.ttftMs));
    const gaps = runs.flatMap((r) => r.timings.flatMap((t) => t.gapsMs));
    const [g50, g95] = [percentile(gaps, 50), percentile(gaps, 95)];
    console.log(
      `| ${c} | ${k.name} | ${fmt(runs.map((r) => r.tokensPerSecond))} | ${fmt(
        runs.map((r) => r.cpuMsPer1k),
        0,
      )} | ${percentile(ttft, 50).toFixed(0)} / ${percentile(ttft, 95).toFixed(0)} | ${g50.toFixed(1)} / ${g95.toFixed(1)} | ${(g95 / g50).toFixed(2)} |`,
    );
  }
  const [a, b] = contenders.map((k) => k.results.get(c));
  const ratio = (key) =>
    fmt(
      a.map((r, i) => b[i][key] / r[key]),
      2,
    );
  console.log(`| ${c} | B ÷ A, round by round | ${ratio('tokensPerSecond')} | ${ratio('cpuMsPer1k')} | | | |`);
}
for (const k of contenders) {
  k.child.kill('SIGTERM');
  await k.child;
}

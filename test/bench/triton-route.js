// The Triton route's overhead (docs/benchmarks.md, "Triton route vs in-process"): llmkit's 100m preset exported with
// --triton, the wheel's tritonserver serving its generate model on loopback, `llmkit serve --engine triton` in front,
// and `llmkit serve` with the in-process engine on the same export. Every round visits both routes at each
// concurrency in turn (streaming chat requests, EOS ignored), so load from other processes falls on both alike.
//
// Usage, in the repo root (needs `llmkit env --setup --triton`):
//   npm run build && node test/bench/triton-route.js [--rounds 6] [--max-tokens 64] [--concurrency 1,8] [--out runs/bench-triton]
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { BENCH_PROMPTS } from '../../dist/core/bench/run.js';
import { timedChatStream } from '../../dist/core/bench/client.js';
import { findTritonEnv, tritonServerCommand } from '../../dist/core/triton/env.js';

const flag = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const rounds = Number(flag('rounds', '6'));
const maxTokens = Number(flag('max-tokens', '64'));
const levels = flag('concurrency', '1,8').split(',').map(Number);
const out = flag('out', 'runs/bench-triton');
const llmkit = (args) => execa('node', ['bin/llmkit.js', ...args], { stdio: 'inherit' });

if (!existsSync(join(out, 'm100', 'config.json'))) await llmkit(['make-model', '--preset', '100m', '--out', join(out, 'm100')]);
if (!existsSync(join(out, 'repo', 'm100-generate', '1', 'model.py'))) {
  await llmkit(['export', join(out, 'm100'), '--out', join(out, 'm100-onnx'), '--triton', join(out, 'repo'), '--triton-name', 'm100']);
}

const env = await findTritonEnv();
if (!env) throw new Error('run `node bin/llmkit.js env --setup --triton` first');
const triton = tritonServerCommand(env, { repository: join(out, 'repo'), httpPort: 18700, grpcPort: 18701, models: ['m100-generate'], exitTimeoutS: 2 });
const tritonProcess = execa(triton.file, triton.args, { env: triton.env, reject: false, stdin: 'ignore' });
while (
  !(await fetch('http://127.0.0.1:18700/v2/health/ready').then(
    (r) => r.ok,
    () => false,
  ))
)
  await new Promise((r) => setTimeout(r, 500));

/** `llmkit serve` as its own process; resolves with its base URL once it listens. */
function serve(extra) {
  return startServe([`bench=${join(out, 'm100-onnx')}`, '--port', '0', '--device', 'cpu', ...extra]);
}
// Prefix reuse off: the prompts repeat every round, and Triton's generate model has no such cache (as npm run bench does).
const routes = { 'in-process': await serve(['--prefix-cache-mb', '0']), triton: await serve(['--engine', 'triton', '--triton-url', 'http://127.0.0.1:18700', '--triton-model', 'm100-generate']) };

const request = (i, tokens = maxTokens) => ({ model: 'bench', messages: [{ role: 'user', content: BENCH_PROMPTS[i % BENCH_PROMPTS.length] }], max_tokens: tokens, ignore_eos: true });
const perRound = {}; // route → concurrency → tokens/s of each round
for (let round = 0; round <= rounds; round++) {
  for (const [name, server] of Object.entries(routes)) {
    for (const c of levels) {
      const started = performance.now();
      const timings = await Promise.all(Array.from({ length: c }, (_, k) => timedChatStream(server.url, request(round * c + k))));
      const tokens = timings.reduce((n, t) => n + t.completionTokens, 0);
      if (round === 0) continue; // warm-up
      ((perRound[name] ??= {})[c] ??= []).push(tokens / ((performance.now() - started) / 1000));
    }
  }
  if (round > 0) process.stderr.write(`round ${round}/${rounds}\n`);
}
for (const server of Object.values(routes)) await server.stop();
tritonProcess.kill('SIGTERM');
await tritonProcess;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const range = (xs) => `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;
console.log(`100m preset, fp32, CPU, ${maxTokens} new tokens per request, ${rounds} rounds (+1 warm-up), streaming chat requests`);
console.log('| concurrency | in-process tok/s, median (range) | Triton route tok/s, median (range) | Triton ÷ in-process, median (range of rounds) |');
console.log('|---|---|---|---|');
for (const c of levels) {
  const a = perRound['in-process'][c];
  const b = perRound.triton[c];
  const ratios = b.map((x, i) => x / a[i]);
  console.log(
    `| ${c} | ${median(a).toFixed(1)} (${range(a)}) | ${median(b).toFixed(1)} (${range(b)}) | ${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}) |`,
  );
}

// The peer benchmark of docs/benchmarks.md ("CPU engine against its peers"): llmkit's engine on its traced and
// its fused export (`llmkit export --fused`) against onnxruntime-genai and llama.cpp (node-llama-cpp) on the
// same weights, at fp32, int8 and int4, batch 1 (and batch 8 against onnxruntime-genai). Every contender is a
// long-lived child process (test/bench/peers/*-runner.*) that answers one request per line; each round visits
// every contender at every precision in turn, so a burst of other work on a shared machine hits all of them,
// and the figures are medians over rounds with their ranges, plus each round's ratio to llmkit.
// test/bench/peers.sh builds the models and calls this; run it directly with the folders it lists:
//   node test/bench/peers.js --models <peers.sh output folder> [--rounds 6] [--threads 2] [--llama-threads 1]
//        [--prompt 256] [--new 128] [--batch 8] [--only NAME,…] [--precisions fp32,int8,int4] [--reference NAME]
//        [--ort-library LABEL=PATH,…] [--session-config LABEL=KEY=VALUE,…]
// --only keeps the contenders whose name starts with one of the NAMEs; --reference is the one the ratios divide by.
// --ort-library adds `llmkit --gqa fixed-cache (ORT LABEL)`: the same path with llmkit's binding opening another
// ONNX Runtime build of the C API (LLMKIT_ORT_LIBRARY), e.g. the PyPI wheel's libonnxruntime.so.1.x that
// onnxruntime-genai's venv runs, to tell the runtime's release from llmkit's own work.
// --session-config adds `llmkit --gqa fixed-cache (LABEL)`: the same path with an ONNX Runtime session config entry
// over the binding's defaults, e.g. `spinning=session.intra_op.allow_spinning=1` (ORT's own default; `;` between entries).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const models = flag('models');
const scratch = flag('scratch', join(process.env.HOME, '.cache', 'llmkit', 'peers'));
const [rounds, threads, llamaThreads, promptLength, newTokens, batch] = ['rounds', 'threads', 'llama-threads', 'prompt', 'new', 'batch'].map((name, i) =>
  Number(flag(name, ['6', '2', '1', '256', '128', '8'][i])),
);
const here = new URL('.', import.meta.url).pathname;
const genaiPython = join(scratch, 'genai-venv', 'bin', 'python');

/** A child process that answers one JSON line per JSON line. */
function contender(name, command, argv, env) {
  const child = spawn(command, argv, { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    name,
    async run(request) {
      child.stdin.write(JSON.stringify(request) + '\n');
      const { value, done } = await lines.next();
      if (done) throw new Error(`${name} exited`);
      return JSON.parse(value);
    },
    close: () => child.stdin.end(),
  };
}

const ALL_PRECISIONS = { fp32: ['fp32', 'f32'], int8: ['int8', 'q8_0'], int4: ['int4', 'q4_0'] };
const PRECISIONS = Object.fromEntries(
  flag('precisions', 'fp32,int8,int4')
    .split(',')
    .map((p) => [p, ALL_PRECISIONS[p]]),
);
const only = flag('only')?.split(',');
const reference = flag('reference', 'llmkit --fused');
const llmkitRunner = (folder, ...rest) => ['node', [join(here, 'peers', 'llmkit-runner.js'), join(models, folder), String(threads), ...rest]];
const ortLibraries = (flag('ort-library')?.split(',') ?? []).map((entry) => entry.split('='));
const sessionConfigs = (flag('session-config')?.split(',') ?? []).map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]);
/** A contender's name and command, spawned only if --only keeps it. */
const spec = (name, command, argv, env) => ({ name, command, argv, env });
const contenders = Object.entries(PRECISIONS).flatMap(([precision, [genai, gguf]]) =>
  [
    spec('llmkit', ...llmkitRunner(`llmkit-${precision}`)),
    spec('llmkit --fused', ...llmkitRunner(`llmkit-fused-${precision}`)),
    // --gqa on llmkit's binding: the dynamic path (present bound to the past's buffer) and the fixed-cache path.
    existsSync(join(models, `llmkit-gqa-${precision}`)) && spec('llmkit --gqa', ...llmkitRunner(`llmkit-gqa-${precision}`)),
    existsSync(join(models, `llmkit-gqa-${precision}`)) && spec('llmkit --gqa fixed-cache', ...llmkitRunner(`llmkit-gqa-${precision}`, 'fixed-cache')),
    ...ortLibraries.map(
      ([label, library]) =>
        existsSync(join(models, `llmkit-gqa-${precision}`)) &&
        spec(`llmkit --gqa fixed-cache (ORT ${label})`, ...llmkitRunner(`llmkit-gqa-${precision}`, 'fixed-cache'), { LLMKIT_ORT_LIBRARY: library }),
    ),
    ...sessionConfigs.map(
      ([label, entry]) => existsSync(join(models, `llmkit-gqa-${precision}`)) && spec(`llmkit --gqa fixed-cache (${label})`, ...llmkitRunner(`llmkit-gqa-${precision}`, 'fixed-cache', entry)),
    ),
    spec('onnxruntime-genai', genaiPython, [join(here, 'peers', 'genai_runner.py'), join(models, `genai-${genai}`)]),
    existsSync(join(models, `${gguf}.gguf`)) &&
      spec(`llama.cpp ${gguf.toUpperCase()} (node-llama-cpp, ${llamaThreads} thread${llamaThreads > 1 ? 's' : ''})`, 'node', [
        join(here, 'peers', 'llama-runner.js'),
        join(scratch, 'llama'),
        join(models, `${gguf}.gguf`),
        String(llamaThreads),
      ]),
  ]
    .filter((c) => c && (!only || only.some((name) => c.name.startsWith(name))))
    .map((c) => ({ ...contender(c.name, c.command, c.argv, c.env), precision })),
);

// Token ids from a fixed generator: every contender gets the same prompts.
let seed = 12345;
const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const prompts = Array.from({ length: batch }, () => Array.from({ length: promptLength }, () => 3 + Math.floor(random() * 700)));
const workloads = [
  { name: 'batch 1', prompts: prompts.slice(0, 1), batched: false },
  { name: `batch ${batch}`, prompts, batched: true },
];

const results = new Map(); // `${workload}|${contender}|${precision}` -> [{prefill, decode, total}]
for (const c of contenders) await c.run({ prompts: prompts.slice(0, 1), newTokens: 8 }); // warm-up
for (let round = 0; round < rounds; round++) {
  for (const workload of workloads) {
    for (const c of contenders) {
      if (workload.batched && c.name.startsWith('llama.cpp')) continue;
      const out = await c.run({ prompts: workload.prompts, newTokens });
      const key = `${workload.name}|${c.name}|${c.precision}`;
      const rows = results.get(key) ?? [];
      rows.push({
        prefill: (1000 * promptLength * workload.prompts.length) / out.prefillMs,
        decode: out.decodeTokPerS.reduce((a, b) => a + b, 0) / out.decodeTokPerS.length,
        total: out.totalTokPerS,
        tokens: out.tokens[0].slice(0, 16).join(','),
      });
      results.set(key, rows);
    }
  }
  process.stderr.write(`round ${round + 1}/${rounds} done\n`);
}
for (const c of contenders) c.close();

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const range = (xs) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;
const ratio = (xs) => `${median(xs).toFixed(2)}× (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
console.log(`${rounds} interleaved rounds, ${promptLength}-token prompt, ${newTokens} greedy tokens, ${threads} threads (llama.cpp: ${llamaThreads})`);
for (const workload of workloads) {
  console.log(
    `\n${workload.name}: ${workload.batched ? 'aggregate tok/s (prefill + decode of every row)' : 'decode tok/s after the first token, prefill tok/s'}; ratios: ${reference} ÷ contender, round by round`,
  );
  console.log('| precision | contender | ' + (workload.batched ? 'aggregate tok/s' : 'decode tok/s | prefill tok/s') + ` | ${reference} ÷ it |`);
  console.log('|---|---|---|' + (workload.batched ? '' : '---|') + '---|');
  for (const precision of Object.keys(PRECISIONS)) {
    const fused = results.get(`${workload.name}|${reference}|${precision}`);
    for (const c of contenders.filter((x) => x.precision === precision)) {
      const rows = results.get(`${workload.name}|${c.name}|${precision}`);
      if (!rows) continue;
      const pick = (m) => rows.map((r) => r[m]);
      const perRound = (m) => fused.map((f, i) => f[m] / rows[i][m]);
      const cells = workload.batched
        ? [`${median(pick('total')).toFixed(0)} (${range(pick('total'))})`, c.name === reference ? '' : ratio(perRound('total'))]
        : [
            `${median(pick('decode')).toFixed(0)} (${range(pick('decode'))})`,
            `${median(pick('prefill')).toFixed(0)} (${range(pick('prefill'))})`,
            c.name === reference ? '' : `decode ${ratio(perRound('decode'))}, prefill ${ratio(perRound('prefill'))}`,
          ];
      console.log(`| ${precision} | ${c.name} | ${cells.join(' | ')} |`);
    }
  }
}
console.log('\nfirst greedy tokens, batch 1, last round:');
for (const c of contenders) console.log(`  ${c.precision} ${c.name}: ${results.get(`batch 1|${c.name}|${c.precision}`).at(-1).tokens}`);

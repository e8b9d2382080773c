#!/usr/bin/env node
// `inspect --for`'s peak-memory estimates against measured peaks: runs a few short trainings (and one server) on
// this machine and prints estimate, measured peak and error for each. CPU: the peak is the worker's RSS
// (ru_maxrss) and the server's VmHWM. --cuda: the trainings on the GPU, the peak torch.cuda.max_memory_allocated
// (tensors only: compared with the estimate less its CUDA-context allowance); no serve rows.
// Usage: [ROWS=finetune,lora,distill] node test/bench/memory-estimates.js [--quick | --serve | --cuda]; LLMKIT_CLI replaces `node bin/llmkit.js`
// (test/bench/device/memory-peaks.sh runs it on the GPU machine).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

const home = process.env.LLMKIT_HOME ?? join(homedir(), '.cache', 'llmkit');
const [node, ...entry] = (process.env.LLMKIT_CLI ?? 'node bin/llmkit.js').split(' ');
const cli = (args) => JSON.parse(execFileSync(node, [...entry, '--json', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, OMP_NUM_THREADS: '2' } }));
const device = process.argv.includes('--cuda') ? 'cuda' : 'cpu';
const model = (preset) => cli(['make-model', '--preset', preset]).path;
const work = mkdtempSync(join(tmpdir(), 'llmkit-memory-'));
// Rows longer than --max-seq-len, so every micro-batch is batch × max-seq-len tokens, as the estimate assumes.
const text = readFileSync('recipes/data/eval.txt', 'utf8');
const data = join(work, 'long.jsonl');
writeFileSync(data, Array.from({ length: 32 }, (_, i) => JSON.stringify({ text: (text.slice(i * 97) + text).slice(0, 3000) })).join('\n') + '\n');

const runs = [
  ['tiny', 'lora', ['--lora', '--batch-size', '8', '--max-seq-len', '256']],
  ['100m', 'finetune', ['--batch-size', '4', '--max-seq-len', '256']],
  ['100m', 'finetune', ['--batch-size', '4', '--max-seq-len', '256', '--gradient-checkpointing']],
  ['100m', 'finetune', ['--batch-size', '8', '--max-seq-len', '512']],
  ['100m', 'lora', ['--lora', '--batch-size', '8', '--max-seq-len', '512']],
  // A student built of all 12 teacher layers: the size the estimate assumes for a distill student.
  ['100m', 'distill', ['--student-layers', '0,1,2,3,4,5,6,7,8,9,10,11', '--batch-size', '4', '--max-seq-len', '256']],
];
const rows = [];
// ROWS=distill,lora keeps the rows of those purposes.
const picked = process.env.ROWS ? runs.filter(([, purpose]) => process.env.ROWS.split(',').includes(purpose)) : runs;
const trainings = process.argv.includes('--serve') ? [] : process.argv.includes('--quick') ? picked.slice(0, 2) : picked;
for (const [preset, purpose, flags] of trainings) {
  const path = model(preset);
  // inspect takes the shape flags; --lora is its --for, and the student is judged at the teacher's size.
  const fitFlags = flags.filter((f, i) => f !== '--lora' && f !== '--student-layers' && flags[i - 1] !== '--student-layers');
  const { parts, total } = cli(['inspect', path, '--for', purpose, '--device', device, ...fitFlags]).memory.estimate;
  // torch's CUDA peak counts tensors, not the CUDA context the estimate adds for the fit.
  const estimate = device === 'cuda' ? total - parts.runtime : total;
  const out = join(work, `${preset}-${rows.length}`);
  const common = ['--data', data, '--out', out, '--max-steps', '3', '--device', device, ...flags];
  const summary = purpose === 'distill' ? cli(['distill', '--teacher', path, '--no-report', ...common]).training : cli(['finetune', path, '--exact-match', '0', ...common]);
  rows.push({ run: `${purpose} ${preset} ${fitFlags.join(' ')} (${device}, ${summary.memoryKind})`, estimate, measured: summary.peakMemoryBytes });
  console.error(rows.at(-1));
}
// serve: the 100m export at each precision, on llmkit's binding and on onnxruntime-node (LLMKIT_NATIVE=0), at
// --max-batch 4 with prompts that fill most of the context; VmHWM read from /proc after the load.
const prompt = text.slice(0, 2400);
async function servePeak(path, env) {
  const server = spawn('node', ['bin/llmkit.js', 'serve', `m=${path}`, '--port', '0', '--json', '--max-batch', '4', '--device', 'cpu'], {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, ...env },
  });
  const url = await new Promise((resolve) => server.stdout.once('data', (b) => resolve(JSON.parse(String(b)).url)));
  const body = JSON.stringify({ model: 'm', prompt, max_tokens: 64, ignore_eos: true });
  await Promise.all(Array.from({ length: 4 }, () => fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body }).then((r) => r.json())));
  const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))[1]) * 1024;
  server.kill('SIGTERM');
  return hwm;
}
const fp32 = device === 'cuda' ? null : cli(['export', model('100m'), '--out', join(work, '100m-onnx')]).path;
const exports =
  device === 'cuda'
    ? []
    : [
        ['fp32', fp32],
        ['tiny fp32', cli(['export', model('tiny'), '--out', join(work, 'tiny-onnx')]).path],
      ];
if (device === 'cpu' && !process.argv.includes('--quick')) {
  for (const bits of ['int8', 'int4']) {
    cli(['quantize', fp32, `--${bits}`, '--out', join(work, `100m-${bits}`), '--eval-tokens', '256']);
    exports.push([bits, join(work, `100m-${bits}`)]);
  }
}
for (const [precision, path] of exports) {
  const estimate = cli(['inspect', path, '--for', 'serve', '--device', 'cpu', '--batch-size', '4']).memory.estimate.total;
  for (const [binding, env] of [
    ['llmkit binding', {}],
    ['onnxruntime-node', { LLMKIT_NATIVE: '0' }],
  ]) {
    rows.push({ run: `serve ${precision.startsWith('tiny') ? precision : `100m ${precision}`}, ${binding}, --max-batch 4 (context 1024)`, estimate, measured: await servePeak(path, env) });
    console.error(rows.at(-1));
  }
}

const mib = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;
console.log('| run | estimate | measured peak | error |\n|---|---|---|---|');
for (const r of rows) console.log(`| ${r.run} | ${mib(r.estimate)} | ${mib(r.measured)} | ${(((r.estimate - r.measured) / r.measured) * 100).toFixed(0)} % |`);
console.log(`\n(${home}; ${new Date().toISOString()})`);

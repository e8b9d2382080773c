// How long the CLI takes to start: the module loading of `llmkit --help` (the entry point and every
// command's file) and of `llmkit env` (the entry point, its own command file and the core module its
// action imports), each in a fresh Node process, and the wall time of `llmkit --help` against
// `node -e ''` (Node's own start, the peer) in interleaved rounds.
// `env`'s wall time is not measured: its work (probing providers, asking Python) takes seconds.
//
// Usage, in the repo root after `npm run build`:
//   node test/bench/startup.js [--rounds 15]
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const roundsAt = process.argv.indexOf('--rounds');
const rounds = roundsAt > 0 ? Number(process.argv[roundsAt + 1]) : 15;

/** Milliseconds to load the entry point, then the commands named (all when none), then these modules, in a fresh process. */
function importMs(commands, modules = []) {
  const script = `const t = performance.now();
    const { COMMANDS } = await import('./dist/cli/main.js');
    await Promise.all(${JSON.stringify(commands)}.map((name) => COMMANDS[name]()));
    for (const m of ${JSON.stringify(modules)}) await import(m);
    console.log(performance.now() - t);`;
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' }));
}

function wallMs(args) {
  const t = performance.now();
  execFileSync(process.execPath, args, { cwd: root, stdio: 'ignore' });
  return performance.now() - t;
}

const { COMMANDS } = await import('../../dist/cli/main.js');
const ALL = Object.keys(COMMANDS);
const contenders = {
  'help: module loading': () => importMs(ALL),
  'env: module loading': () => importMs(['env'], ['./dist/core/env.js']),
  'llmkit --help: wall': () => wallMs(['bin/llmkit.js', '--help']),
  "node -e '': wall": () => wallMs(['-e', '']),
};
const samples = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
for (let r = 0; r < rounds; r++) for (const [name, run] of Object.entries(contenders)) samples[name].push(run());

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`${rounds} rounds, interleaved; median (min–max) ms`);
for (const [name, xs] of Object.entries(samples)) {
  console.log(`${name.padEnd(24)} ${median(xs).toFixed(0).padStart(5)}  (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`);
}
const help = samples['llmkit --help: wall'].map((x, i) => x - samples["node -e '': wall"][i]);
console.log(`llmkit --help beyond Node's own start: ${median(help).toFixed(0)} ms (${Math.min(...help).toFixed(0)}–${Math.max(...help).toFixed(0)})`);

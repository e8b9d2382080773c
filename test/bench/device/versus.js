// Hugging Face generate against llmkit's CUDA engine, from interleaved rounds of one call
// (cuda-run.sh versus): each line of each file is one round's JSON (hf-generate.py's last line, or the
// CUDA entry of engine-gpu.js's). Prints medians with ranges and, per round, the ratio to that round's HF.
//   node test/bench/device/versus.js HF.jsonl NAME=ENGINE.jsonl [NAME=ENGINE.jsonl...]
import { readFileSync } from 'node:fs';

const rounds = (file) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((line) => [JSON.parse(line)].flat().find((r) => r.device !== 'cpu'));
const [hfFile, ...engines] = process.argv.slice(2);
const hf = rounds(hfFile);
const metrics = [
  ['prefillTokensPerSecond', 'prefill tok/s'],
  ['decodeTokensPerSecond', 'decode tok/s, batch 1'],
  ['batchDecodeTokensPerSecond', 'tok/s, batch 8'],
];
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const span = (xs, digits) => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
console.log(`${hf.length} interleaved rounds; ${hf[0].engine} on ${hf[0].gpu}`);
console.log(`| contender | ${metrics.map(([, label]) => label).join(' | ')} |`);
console.log(`|---|${metrics.map(() => '---').join('|')}|`);
console.log(
  `| HF generate | ${metrics
    .map(([key]) =>
      span(
        hf.map((r) => r[key]),
        1,
      ),
    )
    .join(' | ')} |`,
);
for (const spec of engines) {
  const [name, file] = spec.split('=');
  const mine = rounds(file);
  console.log(
    `| llmkit ${name} | ${metrics
      .map(([key]) =>
        span(
          mine.map((r) => r[key]),
          1,
        ),
      )
      .join(' | ')} |`,
  );
  console.log(
    `| ÷ HF, same round | ${metrics
      .map(
        ([key]) =>
          `${span(
            mine.map((r, i) => r[key] / hf[i][key]),
            2,
          )}×`,
      )
      .join(' | ')} |`,
  );
}

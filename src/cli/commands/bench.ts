import type { Command } from 'commander';
import type { BenchReport } from '../../core/bench/run.js';
import { BENCH } from '../../core/bench/options.js';
import { commandFrom } from '../command.js';
import { formatTable } from '../output.js';
import { runnableModel } from '../runnable-model.js';

export function benchCommand(): Command {
  return commandFrom(BENCH, async (options, { flags }) => {
    const { runBench } = await import('../../core/bench/run.js');
    const model = await runnableModel(flags, options.model);
    const report = await runBench({ ...options, model, onStage: (text) => process.stderr.write(`bench: ${text}\n`), cli: process.argv[1] });
    process.stdout.write((flags.json ? JSON.stringify(report) : formatReport(report)) + '\n');
  });
}

function formatReport(r: BenchReport): string {
  const f = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
  const lines = [
    `${r.model} on ${r.device} (${r.decodePath} decode path), ${r.maxTokens} new tokens per request, ${r.rounds} rounds`,
    `bare engine loop: ${f(r.engine.tokensPerSecond)} tokens/s (decode ${f(r.engine.decodeTokensPerSecond)} tokens/s)`,
  ];
  if (r.baseline) {
    lines.push(
      `${r.baseline.name} generate(): ${f(r.baseline.tokensPerSecond)} tokens/s (decode ${f(r.baseline.decodeTokensPerSecond)} tokens/s); llmkit decode is ${f(r.baseline.engineDecodeRatio, 2)}× that`,
    );
  }
  lines.push(
    '',
    formatTable(
      ['concurrency', 'requests', 'tokens/s', '× conc. 1', 'TTFT p50 ms', 'TTFT p95 ms', 'ITL p50 ms', 'ITL p95 ms', 'ITL p95 ÷ p50'],
      r.levels.map((l) => [
        String(l.concurrency),
        String(l.requests),
        f(l.tokensPerSecond),
        f(l.speedup, 2),
        f(l.ttftMs.p50, 0),
        f(l.ttftMs.p95, 0),
        f(l.interTokenMs.p50),
        f(l.interTokenMs.p95),
        f(l.interTokenMs.p95 / l.interTokenMs.p50, 2),
      ]),
    ),
    '',
    `server overhead at concurrency 1 vs the bare engine loop: ${f(r.serverOverhead * 100)} %`,
  );
  return lines.join('\n');
}

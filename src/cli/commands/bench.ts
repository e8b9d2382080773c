import { Command } from 'commander';
import type { BenchReport } from '../../core/bench.js';
import { UsageError } from '../../shared/errors.js';
import { parseDevice } from '../../core/choices.js';
import { action } from '../action.js';
import { parseInteger } from '../flags.js';
import { formatTable, type GlobalFlags } from '../output.js';

interface BenchFlags {
  url?: string;
  apiKey?: string;
  concurrency: string;
  maxTokens: string;
  rounds: string;
  device: string;
  threads?: string;
  baseline: boolean;
}

export function benchCommand(): Command {
  return new Command('bench')
    .description('benchmark serving: bare engine loop, transformers.js on the same model, then the server at several concurrency levels')
    .argument('<model>', 'exported model folder (from `llmkit export` or `quantize`)')
    .option('--concurrency <list>', 'concurrent streaming clients per level, comma-separated', '1,4,8,16')
    .option('--max-tokens <n>', 'new tokens per request (EOS ignored, so every request makes exactly this many)', '128')
    .option('--rounds <n>', 'measured rounds (after a warm-up); each visits every contender and level, each client sending one request', '4')
    .option('--device <device>', 'auto, cpu, cuda or webgpu (engine and server)', 'cpu')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: one per physical core)')
    .option('--url <url>', 'drive this running server (serving the model as "bench") instead of starting one')
    .option('--api-key <key>', 'API key for --url')
    .option('--no-baseline', 'skip the transformers.js comparison')
    .action(
      action(async (opts: BenchFlags, flags: GlobalFlags, [model]) => {
        const { runBench } = await import('../../core/bench.js');
        const concurrency = opts.concurrency.split(',').map((c) => parseInteger(c.trim(), '--concurrency'));
        if (!concurrency.includes(1)) throw new UsageError('--concurrency must include 1: the other levels are compared with it');
        const report = await runBench({
          model,
          url: opts.url,
          apiKey: opts.apiKey,
          concurrency,
          maxTokens: parseInteger(opts.maxTokens, '--max-tokens'),
          rounds: parseInteger(opts.rounds, '--rounds'),
          device: parseDevice(opts.device),
          threads: opts.threads ? parseInteger(opts.threads, '--threads') : undefined,
          baseline: opts.baseline,
          onStage: (text) => process.stderr.write(`bench: ${text}\n`),
          cli: process.argv[1],
        });
        process.stdout.write((flags.json ? JSON.stringify(report) : formatReport(report)) + '\n');
      }),
    );
}

function formatReport(r: BenchReport): string {
  const f = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
  const lines = [
    `${r.model} on ${r.device}, ${r.maxTokens} new tokens per request, ${r.rounds} rounds`,
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
      ['concurrency', 'requests', 'tokens/s', '× conc. 1', 'TTFT p50 ms', 'TTFT p95 ms', 'ITL p50 ms', 'ITL p95 ms'],
      r.levels.map((l) => [String(l.concurrency), String(l.requests), f(l.tokensPerSecond), f(l.speedup, 2), f(l.ttftMs.p50, 0), f(l.ttftMs.p95, 0), f(l.interTokenMs.p50), f(l.interTokenMs.p95)]),
    ),
    '',
    `server overhead at concurrency 1 vs the bare engine loop: ${f(r.serverOverhead * 100)} %`,
  );
  return lines.join('\n');
}

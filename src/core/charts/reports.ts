import { basename } from 'node:path';
import type { BenchReport } from '../bench/run.js';
import type { QuantizeReport } from '../quantize/report.js';
import { svgDocument } from './svg.js';

/** quantize's table as bars, one panel per measured figure, one bar per model (fp32 and each quantized one). */
export function quantizeChart(report: QuantizeReport): string {
  const groups = report.models.map((m) => m.name);
  const figure = (title: string, unit: string, value: (m: QuantizeReport['models'][number]) => number) => ({ title, unit, groups, values: report.models.map(value) });
  return svgDocument(`quantize: ${basename(report.models.at(-1)?.path ?? '')}`, [
    figure('size', 'MiB', (m) => m.bytes / 2 ** 20),
    // Not timed with --no-speed: no panel.
    ...(report.models.every((m) => m.decodeTokensPerSecond !== null) ? [figure('decode speed', 'tokens/s', (m) => m.decodeTokensPerSecond ?? 0)] : []),
    figure('perplexity', `${report.eval.positions} positions`, (m) => m.perplexity),
    figure('top-1 agreement with fp32', '%', (m) => m.top1Agreement * 100),
  ]);
}

/** bench's concurrency table as lines by concurrency: aggregate tokens/s, TTFT and inter-token latency percentiles. */
export function benchChart(report: BenchReport): string {
  const by = (value: (l: BenchReport['levels'][number]) => number): [number, number][] => report.levels.map((l) => [l.concurrency, value(l)]);
  return svgDocument(`bench: ${basename(report.model)} on ${report.device}, ${report.maxTokens} tokens per request`, [
    { title: 'aggregate tokens/s', xLabel: 'concurrent streams', yLabel: 'tokens/s', series: [{ name: 'tokens/s', points: by((l) => l.tokensPerSecond) }] },
    {
      title: 'time to first token',
      xLabel: 'concurrent streams',
      yLabel: 'ms',
      series: [
        { name: 'TTFT p50', points: by((l) => l.ttftMs.p50) },
        { name: 'TTFT p95', points: by((l) => l.ttftMs.p95) },
      ],
    },
    {
      title: 'inter-token latency',
      xLabel: 'concurrent streams',
      yLabel: 'ms',
      series: [
        { name: 'ITL p50', points: by((l) => l.interTokenMs.p50) },
        { name: 'ITL p95', points: by((l) => l.interTokenMs.p95) },
      ],
    },
  ]);
}

import { describe, expect, it } from 'vitest';
import type { BenchReport } from '../../src/core/bench/run.js';
import { join } from 'node:path';
import { chartSeries } from '../helpers/charts.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { exportedTinyModel } from '../helpers/models.js';

describe('llmkit bench', () => {
  it('reports the bare engine, transformers.js and the server at each concurrency level', async () => {
    const chart = join(tempDir(), 'bench.svg');
    const r = await runCli(['--json', 'bench', await exportedTinyModel(), '--concurrency', '1,3', '--max-tokens', '8', '--rounds', '2', '--chart', chart]);
    expect(r.exitCode, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as BenchReport;
    expect(report.device).toBe('cpu');
    // Two measured rounds: one request per client each.
    expect(report.levels.map((l) => [l.concurrency, l.requests, l.completionTokens])).toEqual([
      [1, 2, 16],
      [3, 6, 48],
    ]);
    // The ratios are computed from the measured rates they name (speed itself is not asserted here: docs/benchmarks.md).
    const [single] = report.levels;
    for (const l of report.levels) {
      expect(l.ttftMs.p50).toBeGreaterThan(0);
      expect(l.ttftMs.p95).toBeGreaterThanOrEqual(l.ttftMs.p50);
      expect(l.interTokenMs.p95).toBeGreaterThanOrEqual(l.interTokenMs.p50);
      expect(l.speedup).toBeCloseTo(l.tokensPerSecond / single.tokensPerSecond, 10);
    }
    expect(single.speedup).toBe(1);
    const series = chartSeries(chart);
    expect(series['tokens/s']).toEqual(report.levels.map((l) => [l.concurrency, l.tokensPerSecond]));
    expect(series['TTFT p95']).toEqual(report.levels.map((l) => [l.concurrency, l.ttftMs.p95]));
    expect(report.engine.completionTokens).toBe(16);
    expect(report.baseline).toMatchObject({ name: 'transformers.js', completionTokens: 16 });
    expect(report.baseline!.engineDecodeRatio).toBeCloseTo(report.engine.decodeTokensPerSecond / report.baseline!.decodeTokensPerSecond, 10);
    expect(report.serverOverhead).toBeCloseTo(1 - single.tokensPerSecond / report.engine.tokensPerSecond, 10);
  });
});

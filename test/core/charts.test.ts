import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BenchReport } from '../../src/core/bench/run.js';
import { benchChart, quantizeChart } from '../../src/core/charts/reports.js';
import { writeTrainingChart } from '../../src/core/charts/training.js';
import type { QuantizeReport } from '../../src/core/quantize/report.js';
import { chartBars, chartSeries } from '../helpers/charts.js';
import { tempDir } from '../helpers/cli.js';

describe('charts', () => {
  it("draws a training run's metrics.jsonl: loss with eval points, lr and tokens/s, each series the file's numbers", async () => {
    const dir = tempDir();
    const rows = [
      { step: 1, loss: 6.65, lr: 1e-5, tokens_per_s: 5397.6 },
      { step: 2, loss: 6.5, lr: 2e-5, tokens_per_s: 8529.5 },
      { step: 2, eval_loss: 6.7 },
      { step: 2, exact_match: 0.1, when: 'after' },
      { step: 3, loss: 6.1, lr: 1.5e-5, tokens_per_s: 8433.5 },
    ];
    writeFileSync(join(dir, 'metrics.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const path = await writeTrainingChart(dir, 'finetune: <tiny> & co');
    expect(path).toBe(join(dir, 'metrics.svg'));
    expect(chartSeries(path!)).toEqual({
      'train loss': [
        [1, 6.65],
        [2, 6.5],
        [3, 6.1],
      ],
      'eval loss': [[2, 6.7]],
      lr: [
        [1, 1e-5],
        [2, 2e-5],
        [3, 1.5e-5],
      ],
      'tokens/s': [
        [1, 5397.6],
        [2, 8529.5],
        [3, 8433.5],
      ],
    });
    const svg = readFileSync(path!, 'utf8');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).toContain('finetune: &lt;tiny&gt; &amp; co');
    // The first loss is the highest: its point is drawn at the top of the panel, the last at the bottom.
    const points = /data-series="train loss"[^>]* points="([^"]+)"/
      .exec(svg)![1]
      .split(' ')
      .map((p) => Number(p.split(',')[1]));
    expect(points[0]).toBeLessThan(points[2]);
    expect(await writeTrainingChart(tempDir(), 'no run')).toBeNull();
  });

  it("draws quantize's table as bars and bench's concurrency table as lines, from the reports' numbers", () => {
    const dir = tempDir();
    const model = (name: string, bits: number, bytes: number, tps: number, ppl: number, agree: number) =>
      ({ name, bits, path: `/m/${name}`, bytes, decodeTokensPerSecond: tps, perplexity: ppl, top1Agreement: agree }) as QuantizeReport['models'][number];
    const q = { eval: { positions: 512 }, models: [model('fp32', 32, 8 * 2 ** 20, 100, 20, 1), model('int8', 8, 2 * 2 ** 20, 180, 20.5, 0.97)] } as QuantizeReport;
    writeFileSync(join(dir, 'q.svg'), quantizeChart(q));
    expect(chartBars(join(dir, 'q.svg'))).toEqual({
      size: [
        ['fp32', 8],
        ['int8', 2],
      ],
      'decode speed': [
        ['fp32', 100],
        ['int8', 180],
      ],
      perplexity: [
        ['fp32', 20],
        ['int8', 20.5],
      ],
      'top-1 agreement with fp32': [
        ['fp32', 100],
        ['int8', 97],
      ],
    });
    const untimed = { ...q, models: q.models.map((m) => ({ ...m, decodeTokensPerSecond: null, speedup: null })) };
    writeFileSync(join(dir, 'untimed.svg'), quantizeChart(untimed));
    expect(Object.keys(chartBars(join(dir, 'untimed.svg')))).toEqual(['size', 'perplexity', 'top-1 agreement with fp32']);
    const level = (c: number, tps: number) => ({ concurrency: c, tokensPerSecond: tps, ttftMs: { p50: c * 10, p95: c * 20 }, interTokenMs: { p50: c, p95: c * 2 } });
    const b = { model: '/m/x', device: 'cpu', maxTokens: 8, levels: [level(1, 50), level(4, 150)] } as BenchReport;
    writeFileSync(join(dir, 'b.svg'), benchChart(b));
    expect(chartSeries(join(dir, 'b.svg'))['tokens/s']).toEqual([
      [1, 50],
      [4, 150],
    ]);
  });
});

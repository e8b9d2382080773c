import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../shared/atomic.js';
import { type Panel, svgDocument } from './svg.js';

export const TRAINING_CHART = 'metrics.svg';

interface MetricRecord {
  step: number;
  loss?: number;
  eval_loss?: number;
  lr?: number;
  tokens_per_s?: number;
}

/**
 * The run's metrics.jsonl as a chart beside it (metrics.svg): training and eval loss, learning rate and tokens/s by
 * step. Returns its path, or null when the run wrote no metrics (it stopped before its first step).
 */
export async function writeTrainingChart(runDir: string, title: string): Promise<string | null> {
  const svg = await trainingChart(runDir, title);
  if (svg === null) return null;
  const path = join(runDir, TRAINING_CHART);
  await writeFileAtomic(path, svg);
  return path;
}

/** The chart of metrics.jsonl as it is now (a run still training included), or null before its first step. */
export async function trainingChart(runDir: string, title: string): Promise<string | null> {
  const source = join(runDir, 'metrics.jsonl');
  if (!existsSync(source)) return null;
  const records = (await readFile(source, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as MetricRecord);
  const series = (field: keyof MetricRecord) => records.filter((r) => typeof r[field] === 'number').map((r): [number, number] => [r.step, r[field] as number]);
  if (!series('loss').length) return null;
  const panels: Panel[] = [
    {
      title: 'loss',
      xLabel: 'step',
      yLabel: 'loss',
      series: [{ name: 'train loss', points: series('loss') }, ...(series('eval_loss').length ? [{ name: 'eval loss', points: series('eval_loss'), dots: true }] : [])],
    },
    { title: 'learning rate', xLabel: 'step', yLabel: 'lr', series: [{ name: 'lr', points: series('lr') }] },
    { title: 'tokens per second', xLabel: 'step', yLabel: 'tokens/s', series: [{ name: 'tokens/s', points: series('tokens_per_s') }] },
  ];
  return svgDocument(title, panels);
}

import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { RunCharts, RunInfo } from '../../serve/run-charts.js';
import { UsageError } from '../../shared/errors.js';
import { TRAINING_CHART, trainingChart } from './training.js';

/**
 * The runs of `serve --runs DIR`: DIR itself and each folder in it that holds a chart (finetune's and distill's
 * metrics.svg, quantize-report.svg, a bench --chart file) or a training's metrics.jsonl. Read at each request, so a
 * run started later appears; a training run's metrics.svg is drawn from metrics.jsonl as it is then, so the
 * dashboard follows a run that is still going. Only files list() names are read: no path from a request is opened.
 */
export function runChartsIn(root: string): RunCharts {
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new UsageError(`--runs ${root} is not a folder`, 'pass the folder that holds your finetune, distill, quantize or bench runs');
  const folders = (): [string, string][] => {
    const children = readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory() && !d.name.startsWith('.'));
    return [[basename(root), root], ...children.map((d): [string, string] => [d.name, join(root, d.name)])];
  };
  const describe = ([id, dir]: [string, string]): RunInfo | null => {
    const svgs = readdirSync(dir, { withFileTypes: true })
      .filter((f) => f.isFile() && f.name.endsWith('.svg'))
      .map((f) => f.name);
    const live = existsSync(join(dir, 'metrics.jsonl')) && !svgs.includes(TRAINING_CHART) ? [TRAINING_CHART] : [];
    const charts = [...live, ...svgs].sort();
    if (!charts.length) return null;
    const updated = Math.max(...[...charts.filter((c) => c !== live[0]), ...(live.length ? ['metrics.jsonl'] : [])].map((f) => statSync(join(dir, f)).mtimeMs));
    return { id, charts, updated: new Date(updated).toISOString() };
  };
  const runs = () =>
    folders().flatMap((f) => {
      const info = describe(f);
      return info ? [{ info, dir: f[1] }] : [];
    });
  return {
    list: async () =>
      runs()
        .map((r) => r.info)
        .sort((a, b) => b.updated.localeCompare(a.updated)),
    chart: async (id, file) => {
      const run = runs().find((r) => r.info.id === id && r.info.charts.includes(file));
      if (!run) return null;
      if (file === TRAINING_CHART && existsSync(join(run.dir, 'metrics.jsonl'))) return trainingChart(run.dir, await trainingTitle(run.dir, id));
      return readFile(join(run.dir, file), 'utf8');
    },
  };
}

/** What finetune and distill title their chart with (`finetune: <model>`), from the run's saved config. */
async function trainingTitle(dir: string, id: string): Promise<string> {
  try {
    const config = JSON.parse(await readFile(join(dir, 'llmkit-config.json'), 'utf8')) as { command?: string; options?: { model?: string; teacher?: string } };
    const model = config.options?.model ?? config.options?.teacher;
    return config.command && model ? `${config.command}: ${basename(model)}` : id;
  } catch {
    return id;
  }
}

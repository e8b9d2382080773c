import { readFileSync } from 'node:fs';

/** The numbers an llmkit SVG chart carries: each line's x and y (data-series), each bar's value (data-group). */
export function chartSeries(path: string): Record<string, [number, number][]> {
  return chartSeriesOf(readFileSync(path, 'utf8'));
}

export function chartSeriesOf(svg: string): Record<string, [number, number][]> {
  const out: Record<string, [number, number][]> = {};
  for (const m of svg.matchAll(/data-series="([^"]*)" data-x="([^"]*)" data-y="([^"]*)"/g)) {
    const xs = m[2].split(' ').filter(Boolean).map(Number);
    const ys = m[3].split(' ').filter(Boolean).map(Number);
    out[m[1]] = xs.map((x, i) => [x, ys[i]]);
  }
  return out;
}

/** Bars by chart title, each [group, value]. */
export function chartBars(path: string): Record<string, [string, number][]> {
  const svg = readFileSync(path, 'utf8');
  const out: Record<string, [string, number][]> = {};
  let current = '';
  for (const m of svg.matchAll(/data-chart="([^"]*)"|data-group="([^"]*)" data-value="([^"]*)"/g)) {
    if (m[1] !== undefined) current = m[1];
    else (out[current] ??= []).push([m[2], Number(m[3])]);
  }
  return out;
}

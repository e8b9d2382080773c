import type { ServerResponse } from 'node:http';

/** A run folder the dashboard can show: its name under --runs, its charts (SVG file names), when it last changed. */
export interface RunInfo {
  id: string;
  charts: string[];
  updated: string;
}

/** Where `serve --runs` finds runs and their charts (core/charts/runs.ts reads a folder). */
export interface RunCharts {
  list(): Promise<RunInfo[]>;
  /** The chart's SVG, or null when the run or chart is not one that list() names. */
  chart(run: string, file: string): Promise<string | null>;
}

/**
 * A chart is sent as an image under a policy that runs nothing and loads nothing: an SVG in a run folder could carry
 * a script, and opened directly it would run with this server's origin. The page shows charts as images (no scripts).
 */
const CHART_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox";

export function sendChart(res: ServerResponse, svg: string): void {
  res.writeHead(200, {
    'Content-Type': 'image/svg+xml; charset=utf-8',
    'Content-Length': Buffer.byteLength(svg),
    'Content-Security-Policy': CHART_POLICY,
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-cache',
  });
  res.end(svg);
}

/**
 * Charts as standalone SVG files: readable offline in any browser or image viewer, diffable, no dependency. Each
 * series carries its numbers in `data-x`/`data-y` beside the drawn points, so tools (and tests) read the figures
 * back exactly, not from pixels.
 */
export interface Series {
  name: string;
  points: [number, number][];
  /** Points drawn as dots without a line (an eval loss every N steps). */
  dots?: boolean;
}

export interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
}

export interface Bars {
  title: string;
  /** The groups along x (models, precisions). */
  groups: string[];
  /** One value per group, or null where a group has none. */
  values: (number | null)[];
  unit: string;
}

const WIDTH = 640;
const PANEL_HEIGHT = 220;
const MARGIN = { left: 64, right: 16, top: 28, bottom: 36 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const num = (v: number) => (Math.abs(v) >= 1000 || v === Math.round(v) ? String(Math.round(v * 100) / 100) : Number(v.toPrecision(4)).toString());

/** A page of panels stacked vertically (or bar charts), with a title. */
export function svgDocument(title: string, parts: (Panel | Bars)[]): string {
  const height = 40 + parts.length * PANEL_HEIGHT;
  const body = parts.map((p, i) => `<g transform="translate(0 ${40 + i * PANEL_HEIGHT})">${'groups' in p ? barChart(p) : linePanel(p)}</g>`).join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="15">${esc(title)}</text>`,
    body,
    '</svg>',
    '',
  ].join('\n');
}

function ticks(lo: number, hi: number, count = 4): number[] {
  return Array.from({ length: count + 1 }, (_, i) => lo + ((hi - lo) * i) / count);
}

function linePanel(p: Panel): string {
  const all = p.series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  if (!all.length) return `<text x="${MARGIN.left}" y="${MARGIN.top + 20}">${esc(p.title)}: no data</text>`;
  const [x0, x1] = [Math.min(...all.map(([x]) => x)), Math.max(...all.map(([x]) => x))];
  let [y0, y1] = [Math.min(...all.map(([, y]) => y)), Math.max(...all.map(([, y]) => y))];
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  const w = WIDTH - MARGIN.left - MARGIN.right;
  const h = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const sx = (x: number) => MARGIN.left + (x1 === x0 ? w / 2 : ((x - x0) / (x1 - x0)) * w);
  const sy = (y: number) => MARGIN.top + h - ((y - y0) / (y1 - y0)) * h;
  const axis = [
    `<text x="${MARGIN.left}" y="${MARGIN.top - 8}" font-size="13">${esc(p.title)}</text>`,
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${w}" height="${h}" fill="none" stroke="#ccc"/>`,
    ...ticks(y0, y1).map((t) => {
      return `<text x="${MARGIN.left - 4}" y="${sy(t) + 4}" text-anchor="end">${num(t)}</text>`;
    }),
    ...ticks(x0, x1).map((t) => `<text x="${sx(t)}" y="${MARGIN.top + h + 14}" text-anchor="middle">${num(t)}</text>`),
    `<text x="${MARGIN.left + w / 2}" y="${PANEL_HEIGHT - 6}" text-anchor="middle">${esc(p.xLabel)}</text>`,
    `<text transform="translate(12 ${MARGIN.top + h / 2}) rotate(-90)" text-anchor="middle">${esc(p.yLabel)}</text>`,
  ];
  const lines = p.series.map((s, i) => {
    const color = COLORS[i % COLORS.length];
    const kept = s.points.filter(([, y]) => Number.isFinite(y));
    const data = `data-series="${esc(s.name)}" data-x="${kept.map(([x]) => x).join(' ')}" data-y="${kept.map(([, y]) => y).join(' ')}"`;
    const legend = `<text x="${WIDTH - MARGIN.right - 4}" y="${MARGIN.top + 14 + i * 14}" text-anchor="end" fill="${color}">${esc(s.name)}</text>`;
    if (s.dots) return `<g ${data} fill="${color}">${kept.map(([x, y]) => `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3"/>`).join('')}</g>${legend}`;
    return `<polyline ${data} fill="none" stroke="${color}" stroke-width="1.5" points="${kept.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>${legend}`;
  });
  return [...axis, ...lines].join('\n');
}

function barChart(b: Bars): string {
  const w = WIDTH - MARGIN.left - MARGIN.right;
  const h = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const top = Math.max(0, ...b.values.map((v) => v ?? 0)) || 1;
  const slot = w / Math.max(1, b.groups.length);
  const bars = b.groups.map((g, i) => {
    const v = b.values[i];
    const x = MARGIN.left + i * slot + slot * 0.2;
    const label = `<text x="${x + slot * 0.3}" y="${MARGIN.top + h + 14}" text-anchor="middle">${esc(g)}</text>`;
    if (v === null) return `${label}<text x="${x + slot * 0.3}" y="${MARGIN.top + h - 4}" text-anchor="middle">–</text>`;
    const bh = (v / top) * h;
    return `<rect data-group="${esc(g)}" data-value="${v}" x="${x.toFixed(1)}" y="${(MARGIN.top + h - bh).toFixed(1)}" width="${(slot * 0.6).toFixed(1)}" height="${bh.toFixed(1)}" fill="${COLORS[i % COLORS.length]}"/>${label}<text x="${x + slot * 0.3}" y="${(MARGIN.top + h - bh - 4).toFixed(1)}" text-anchor="middle">${num(v)}</text>`;
  });
  return [
    `<text x="${MARGIN.left}" y="${MARGIN.top - 8}" font-size="13" data-chart="${esc(b.title)}">${esc(b.title)} (${esc(b.unit)})</text>`,
    `<line x1="${MARGIN.left}" x2="${MARGIN.left + w}" y1="${MARGIN.top + h}" y2="${MARGIN.top + h}" stroke="#999"/>`,
    ...bars,
  ].join('\n');
}

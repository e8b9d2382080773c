import { describeFailure, getJson } from './api.js';
import { bucketDelta, buckets, labelValues, parseMetrics, quantile, type Sample, total } from './prometheus.js';
import { RunsView } from './runs.js';

const $ = (id: string) => document.getElementById(id) as HTMLElement;
const HISTORY = 60;
/** Run charts are read from disk: every this many refreshes, not every second. */
const RUNS_EVERY = 5;

interface Scrape {
  at: number;
  samples: Sample[];
}

interface QuotaRow {
  name: string;
  account?: string | null;
  rpm: { used: number | null; limit: number | null };
  tpm: { used: number | null; limit: number | null };
  tpd: { used: number | null; limit: number | null };
}

/**
 * The dashboard: per model, tokens/s between two scrapes of /metrics (public, like the endpoint itself), the queue
 * and batch now, TTFT and inter-token percentiles over the last window and since start, and the response cache's
 * hits per model; quota use from /v1/usage (which needs a key when keys are on); the charts of `--runs`.
 */
export class DashboardView {
  private previous?: Scrape;
  private readonly rates = new Map<string, number[]>();
  private timer?: number;
  private ticks = 0;
  private readonly runs = new RunsView();

  start(intervalMs = 1000): void {
    this.stop();
    this.ticks = 0;
    void this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), intervalMs);
  }

  stop(): void {
    if (this.timer !== undefined) window.clearInterval(this.timer);
    this.timer = undefined;
  }

  private async refresh(): Promise<void> {
    try {
      const res = await fetch('/metrics');
      const scrape = { at: performance.now(), samples: parseMetrics(await res.text()) };
      this.renderModels(scrape, this.previous);
      this.previous = scrape;
      $('dash-status').textContent = `updated ${new Date().toLocaleTimeString()}`;
      $('dash-status').className = 'muted';
    } catch (e) {
      $('dash-status').textContent = describeFailure(e);
      $('dash-status').className = 'error';
    }
    await this.renderQuotas();
    if (this.ticks++ % RUNS_EVERY === 0) await this.runs.refresh();
  }

  private renderModels(now: Scrape, before: Scrape | undefined): void {
    const s = now.samples;
    const models = [...new Set([...labelValues(s, 'llmkit_queue_depth', 'model'), ...labelValues(s, 'llmkit_completion_tokens_total', 'model')])];
    $('cache-hits').textContent = cacheHits(s, {}, 'no cacheable requests yet (--cache)');
    $('models-table').replaceChildren(
      ...models.map((model) => {
        const m = { model };
        const seconds = before ? (now.at - before.at) / 1000 : 0;
        const generated = total(s, 'llmkit_completion_tokens_total', m);
        const rate = before && seconds > 0 ? Math.max(0, generated - total(before.samples, 'llmkit_completion_tokens_total', m)) / seconds : 0;
        const history = [...(this.rates.get(model) ?? []), rate].slice(-HISTORY);
        this.rates.set(model, history);
        const latency = (name: string) => {
          const all = buckets(s, name, m);
          const recent = before ? bucketDelta(all, buckets(before.samples, name, m)) : all;
          const ms = (q: number, b: [number, number][]) => {
            const v = quantile(q, b);
            return v === null ? '–' : `${Math.round(v * 1000)}`;
          };
          return `${ms(0.5, recent)} / ${ms(0.95, recent)} ms (since start ${ms(0.5, all)} / ${ms(0.95, all)})`;
        };
        return row(`model-${model}`, [
          model,
          { text: rate.toFixed(1), id: `tps-${model}`, chart: sparkline(history) },
          String(total(s, 'llmkit_queue_depth', m)),
          String(total(s, 'llmkit_running_batch_size', m)),
          String(total(s, 'llmkit_generations_total', m)),
          String(generated),
          latency('llmkit_time_to_first_token_seconds'),
          latency('llmkit_inter_token_latency_seconds'),
          cacheHits(s, m),
        ]);
      }),
    );
  }

  private async renderQuotas(): Promise<void> {
    try {
      const usage = await getJson<{ keys: QuotaRow[]; accounts: QuotaRow[] }>('/v1/usage');
      const cell = (u: QuotaRow['rpm']) => (u.used === null ? '–' : `${u.used}${u.limit === null ? '' : ` / ${u.limit}`}`);
      const rows = [...usage.accounts.map((a) => ({ ...a, name: `account ${a.name}` })), ...usage.keys.map((k) => ({ ...k, name: `key ${k.name}` }))];
      $('quota-table').replaceChildren(...rows.map((r) => row(`quota-${r.name}`, [r.name, cell(r.rpm), cell(r.tpm), cell(r.tpd)])));
      $('quota-status').textContent = '';
    } catch (e) {
      $('quota-table').replaceChildren();
      $('quota-status').textContent = describeFailure(e);
      $('quota-status').className = 'error';
    }
  }
}

/** Response-cache hits of the lookups that match `labels` (one model's, or all). */
function cacheHits(s: Sample[], labels: Record<string, string>, none = '–'): string {
  const hits = total(s, 'llmkit_cache_requests_total', { ...labels, result: 'hit' });
  const lookups = total(s, 'llmkit_cache_requests_total', labels);
  return lookups ? `${hits} of ${lookups} (${((100 * hits) / lookups).toFixed(0)} %)` : none;
}

type Cell = string | { text: string; id: string; chart: SVGElement };

function row(id: string, cells: Cell[]): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.id = id;
  for (const c of cells) {
    const td = document.createElement('td');
    if (typeof c === 'string') td.textContent = c;
    else {
      const value = document.createElement('span');
      value.id = c.id;
      value.className = 'value';
      value.textContent = c.text;
      td.append(value, c.chart);
    }
    tr.append(td);
  }
  return tr;
}

/** The last minute of tokens/s as a small line chart. */
function sparkline(values: number[]): SVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${HISTORY} 20`);
  svg.setAttribute('class', 'spark');
  const top = Math.max(1, ...values);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', values.map((v, i) => `${i + HISTORY - values.length},${(20 - (18 * v) / top).toFixed(1)}`).join(' '));
  svg.append(line);
  return svg;
}

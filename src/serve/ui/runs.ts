import { ApiFailure, checked, describeFailure, getJson, headers } from './api.js';

const $ = (id: string) => document.getElementById(id) as HTMLElement;

interface RunInfo {
  id: string;
  charts: string[];
  updated: string;
}

/**
 * The dashboard's runs (`serve --runs DIR`): each run's charts as buttons; the one picked is fetched with the API key
 * and shown as an image, and fetched again at each refresh, so a training still going draws its new steps.
 * Without --runs the server answers 404 and the section stays hidden.
 */
export class RunsView {
  private shown?: { run: string; chart: string; url?: string };

  async refresh(): Promise<void> {
    let runs: RunInfo[];
    try {
      runs = (await getJson<{ data: RunInfo[] }>('/runs')).data;
    } catch (e) {
      const missing = e instanceof ApiFailure && e.status === 404;
      $('runs').hidden = missing;
      if (!missing) this.status(describeFailure(e), 'error');
      return;
    }
    $('runs').hidden = false;
    this.status(runs.length ? '' : 'no charts in the --runs folder yet', 'muted');
    $('runs-table').replaceChildren(...runs.map((r) => this.row(r)));
    if (this.shown) await this.show(this.shown.run, this.shown.chart);
  }

  private row(r: RunInfo): HTMLTableRowElement {
    const tr = document.createElement('tr');
    tr.id = `run-${r.id}`;
    const name = document.createElement('td');
    name.textContent = r.id;
    const updated = document.createElement('td');
    updated.textContent = new Date(r.updated).toLocaleString();
    const charts = document.createElement('td');
    for (const chart of r.charts) {
      const button = document.createElement('button');
      button.textContent = chart;
      button.addEventListener('click', () => void this.show(r.id, chart));
      charts.append(button);
    }
    tr.append(name, updated, charts);
    return tr;
  }

  private async show(run: string, chart: string): Promise<void> {
    try {
      const res = await checked(await fetch(`/runs/${encodeURIComponent(run)}/${encodeURIComponent(chart)}`, { headers: headers() }));
      const url = URL.createObjectURL(await res.blob());
      if (this.shown?.url) URL.revokeObjectURL(this.shown.url);
      this.shown = { run, chart, url };
      ($('run-chart') as HTMLImageElement).src = url;
      $('run-caption').textContent = `${run}: ${chart}`;
      $('run-figure').hidden = false;
    } catch (e) {
      this.status(describeFailure(e), 'error');
    }
  }

  private status(text: string, kind: 'muted' | 'error'): void {
    $('runs-status').textContent = text;
    $('runs-status').className = kind;
  }
}

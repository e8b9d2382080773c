import { startServer, type RunningServer, type ServeOptions } from '../../src/core/serve.js';
import { exportedTinyModel } from './models.js';

export interface TestServer extends RunningServer {
  /** Access-log lines, one per request. */
  log: string[];
}

/** The real server in this process, on a free port of 127.0.0.1, serving the tiny model as "tiny". */
export async function startTestServer(opts: Partial<ServeOptions> = {}): Promise<TestServer> {
  const log: string[] = [];
  const server = await startServer({ models: [`tiny=${await exportedTinyModel()}`], host: '127.0.0.1', port: 0, device: 'cpu', log: (line) => log.push(line), ...opts });
  return { ...server, log };
}

/** POSTs JSON and returns the status, headers and parsed body (errors included). */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, headers: res.headers, body: (await res.json()) as { error?: { message: string; type: string; param: string | null; code: string | null } } & Record<string, unknown> };
}

/** Reads a metric's value from the Prometheus text of /metrics (0 when absent). */
export async function metric(url: string, series: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

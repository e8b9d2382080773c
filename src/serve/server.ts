import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { formatAccessLine, type AccessEntry } from './access-log.js';
import type { ApiKey, Authenticator } from './access/auth.js';
import { CompletionService } from './completions.js';
import type { ContentFilter } from './content-filter.js';
import { readJson, sendError, sendJson, SseWriter } from './http-io.js';
import type { ModelRegistry } from './model-registry.js';
import { ApiError, toApiError } from './openai/errors.js';
import type { Endpoint } from './openai/translate.js';
import type { QuotaTracker } from './access/quotas.js';
import type { ResponseCache } from './response-cache.js';
import type { ServerMetrics } from './server-metrics.js';
import { type RunCharts, sendChart } from './run-charts.js';
import { serveWebUi } from './web-ui.js';
import { WebSocketGateway } from './websocket.js';
import { adapterCard, handleLoraAdmin, LORA_ADMIN_ROUTES } from './lora-admin.js';
import { BatchService, type BatchOptions } from './batch/batch-service.js';
import { BatchApi } from './batch/routes.js';

export interface ServerOptions {
  models: ModelRegistry;
  auth: Authenticator;
  quotas: QuotaTracker;
  metrics: ServerMetrics;
  filter?: ContentFilter;
  cache?: ResponseCache;
  /** Receives one access-log line per request. */
  log: (line: string) => void;
  /** Files and batches (/v1/files, /v1/batches): where they are kept and their limits. */
  batch?: BatchOptions;
  /** Serve the web page (chat playground and dashboard) at `/` (default true; `--no-ui` turns it off). */
  ui?: boolean;
  /** `--runs DIR`: run folders whose charts the dashboard lists and shows (behind the API key when keys are on). */
  runs?: RunCharts;
  /** The admin key's check, for loading and unloading LoRA adapters at run time (lora-admin.ts); none: that API is off. */
  admin?: Authenticator;
}

/** Seconds a client is asked to wait while the server drains. */
const DRAIN_RETRY_AFTER_S = 5;

/** nginx's "client closed request": the client left before a response could be sent. */
const CLIENT_CLOSED = 499;

/** `hit` or `miss` on cacheable requests when the response cache is on. */
export const CACHE_HEADER = 'X-Llmkit-Cache';

const GENERATION_ROUTES: Record<string, Endpoint> = { '/v1/chat/completions': 'chat', '/v1/completions': 'completion' };

/**
 * The OpenAI-compatible server on node:http: REST (JSON and server-sent events), the WebSocket at
 * /v1/ws and /v1/chat/completions, quota usage at /v1/usage, health, readiness and Prometheus metrics. SIGTERM-style draining: new requests get 503
 * while the ones in flight finish.
 */
export class LlmServer {
  private readonly http: Server;
  private readonly service: CompletionService;
  private readonly ws: WebSocketGateway;
  readonly batches?: BatchService;
  private readonly inFlight = new Set<Promise<unknown>>();
  private draining = false;

  constructor(private readonly opts: ServerOptions) {
    this.service = new CompletionService(opts);
    this.ws = new WebSocketGateway({
      service: this.service,
      auth: opts.auth,
      metrics: opts.metrics,
      log: opts.log,
      refuseIfDraining: () => this.refuseIfDraining(),
      track: (p) => this.track(p),
    });
    if (opts.batch) this.batches = BatchService.open(opts.batch, { service: this.service, auth: opts.auth, models: opts.models, quotas: opts.quotas });
    this.http = createServer((req, res) => void this.track(this.route(req, res)));
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.ws.upgrade(req, socket, head));
  }

  async listen(port: number, host: string): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => resolve());
    });
    const address = this.http.address() as AddressInfo;
    return `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  }

  /**
   * Refuses new requests (503), waits for those in flight (at most `deadlineMs`), then closes every connection:
   * a request still going at the deadline loses its connection, and its generation leaves the batch.
   * Returns how many requests were cut off.
   */
  async drain(deadlineMs = Infinity): Promise<number> {
    this.draining = true;
    const finished = (async () => {
      await this.batches?.close();
      while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
    })();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.min(deadlineMs, 2 ** 31 - 1))));
    await Promise.race([finished, deadline]);
    clearTimeout(timer);
    const cutOff = this.inFlight.size;
    this.ws.closeAll();
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeAllConnections();
    await closed;
    return cutOff;
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p)).catch(() => {});
    return p;
  }

  private refuseIfDraining(): void {
    if (this.draining) throw new ApiError(503, 'The server is shutting down: try again on another instance or shortly', 'shutting_down', null, { 'Retry-After': String(DRAIN_RETRY_AFTER_S) });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const entry: AccessEntry = { remote: req.socket.remoteAddress ?? '-', method: req.method ?? '-', path: url.pathname, status: 0, ms: 0 };
    try {
      await this.dispatch(req, res, url, entry);
    } catch (e) {
      const error = toApiError(e);
      entry.error = error.code ?? undefined;
      if (!res.headersSent) sendError(res, error);
    } finally {
      entry.status = res.headersSent ? res.statusCode : CLIENT_CLOSED;
      entry.ms = performance.now() - started;
      this.opts.metrics.requests.inc({ route: url.pathname, status: String(entry.status) });
      this.opts.log(formatAccessLine(entry));
    }
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse, url: URL, entry: AccessEntry): Promise<void> {
    const { pathname } = url;
    const endpoint = GENERATION_ROUTES[pathname];
    if (endpoint) {
      this.allow(req, 'POST');
      this.refuseIfDraining();
      const key = this.opts.auth.authenticate(req.headers.authorization);
      entry.key = key.name;
      // Until it is queued, the engines' next step waits for it rather than hold the event loop a whole batch step.
      const queued = this.opts.models.arriving();
      try {
        return await this.generate(endpoint, await readJson(req), key, res, entry, queued);
      } finally {
        queued();
      }
    }
    if (BatchApi.handles(pathname) && this.batches) {
      if (req.method !== 'GET') this.refuseIfDraining();
      const key = this.opts.auth.authenticate(req.headers.authorization);
      entry.key = key.name;
      return this.batches.routes().route(req, res, url, key);
    }
    if (pathname === '/v1/usage') {
      this.allow(req, 'GET');
      const key = this.opts.auth.authenticate(req.headers.authorization);
      entry.key = key.name;
      return sendJson(res, 200, await this.opts.quotas.usage(key, this.opts.auth.apiKeys));
    }
    if (LORA_ADMIN_ROUTES.has(pathname)) {
      this.allow(req, 'POST');
      return sendJson(res, 200, await handleLoraAdmin(pathname, req.headers.authorization, await readJson(req), this.opts.models, this.opts.admin));
    }
    if (pathname === '/health') return sendJson(res, 200, { status: 'ok' });
    if (this.opts.runs && (pathname === '/runs' || pathname.startsWith('/runs/'))) return this.runCharts(this.opts.runs, req, res, pathname, entry);
    if (this.opts.ui !== false && req.method === 'GET' && (await serveWebUi(pathname, res))) return;
    if (pathname === '/ready') {
      if (this.draining) return sendJson(res, 503, { status: 'draining' });
      const why = await this.opts.models.unavailable();
      return why ? sendJson(res, 503, { status: 'unavailable', reason: why }) : sendJson(res, 200, { status: 'ready' });
    }
    if (pathname === '/metrics') {
      const text = this.opts.metrics.registry.render();
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
      return void res.end(text);
    }
    if (pathname === '/v1/models' || pathname.startsWith('/v1/models/')) {
      this.allow(req, 'GET');
      entry.key = this.opts.auth.authenticate(req.headers.authorization).name;
      const models = this.opts.models.models.map((m) => ({ ...adapterCard(m), context_length: m.engine.contextLength, device: m.engine.device }));
      if (pathname === '/v1/models') return sendJson(res, 200, { object: 'list', data: models });
      const id = decodeURIComponent(pathname.slice('/v1/models/'.length));
      return sendJson(
        res,
        200,
        models.find((m) => m.id === this.opts.models.resolve(id).id),
      );
    }
    throw new ApiError(404, `Unknown request URL: ${req.method} ${pathname}`, 'unknown_url');
  }

  /** GET /runs: the runs and their charts; GET /runs/<run>/<chart>.svg: one chart. Data like the API's: a key when keys are on. */
  private async runCharts(runs: RunCharts, req: IncomingMessage, res: ServerResponse, pathname: string, entry: AccessEntry): Promise<void> {
    this.allow(req, 'GET');
    entry.key = this.opts.auth.authenticate(req.headers.authorization).name;
    if (pathname === '/runs') return sendJson(res, 200, { object: 'list', data: await runs.list() });
    const [run, file, ...rest] = pathname.slice('/runs/'.length).split('/').map(decodedOrEmpty);
    const svg = run && file && !rest.length ? await runs.chart(run, file) : null;
    if (svg === null) throw new ApiError(404, `No chart ${pathname.slice('/runs/'.length)} under --runs: GET /runs lists them`, 'unknown_chart');
    sendChart(res, svg);
  }

  private allow(req: IncomingMessage, method: string): void {
    if (req.method !== method) throw new ApiError(405, `${req.method} is not allowed on ${req.url}: use ${method}`, 'method_not_allowed');
  }

  private async generate(endpoint: Endpoint, body: unknown, key: ApiKey, res: ServerResponse, entry: AccessEntry, queued?: () => void): Promise<void> {
    const client = new AbortController();
    // The client went away before the whole answer was sent: its generation leaves the batch at the next step.
    res.on('close', () => !res.writableFinished && client.abort());
    const sse = new SseWriter(res);
    try {
      const summary = await this.service.handle(endpoint, body, key, client.signal, {
        chunk: (c) => sse.send(c),
        complete: (r) => sendJson(res, 200, r),
        cacheStatus: (status) => res.setHeader(CACHE_HEADER, status),
        queued,
      });
      Object.assign(entry, {
        model: summary.model,
        transport: summary.stream ? 'sse' : 'json',
        promptTokens: summary.end.promptTokens,
        completionTokens: summary.end.completionTokens,
        finish: summary.end.reason,
        cache: summary.cache,
      });
      if (sse.open && !client.signal.aborted) sse.done();
    } catch (e) {
      if (!sse.open) throw e;
      // The status line is gone: the error travels as one more event, then the stream ends.
      const error = toApiError(e);
      entry.error = error.code ?? undefined;
      sse.send(error.body);
      sse.done();
    }
  }
}

/** A path segment decoded, or '' when its escapes are malformed (a 404 then, not an error of ours). */
function decodedOrEmpty(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return '';
  }
}

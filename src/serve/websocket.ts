import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { formatAccessLine } from './access-log.js';
import type { ApiKey, Authenticator } from './access/auth.js';
import type { CompletionService } from './completions.js';
import { MAX_BODY_BYTES } from './http-io.js';
import { ApiError, toApiError } from './openai/errors.js';
import type { Endpoint } from './openai/translate.js';
import type { ServerMetrics } from './server-metrics.js';

export const WS_PATH = '/v1/ws';

/** Where a plain request (no envelope) is read as chat or as a legacy completion. */
const PLAIN_PATHS: Record<string, Endpoint> = { '/v1/chat/completions': 'chat', '/v1/completions': 'completion', [WS_PATH]: 'chat' };

/**
 * Two shapes of messages, on ws://HOST/v1/ws, /v1/chat/completions or /v1/completions.
 *
 * A plain OpenAI request, as clients written for OpenAI's streaming send it (no `id`, no envelope): the
 * answer streams as bare chunk objects, exactly the SSE stream's `data:` payloads, until the chunk with
 * `finish_reason`; an error is a bare OpenAI error object. On /v1/ws a body with `prompt` and no
 * `messages` is a legacy completion.
 *
 * The envelope, several requests at a time per connection, told apart by the client's `id`:
 *   → {"type": "chat.completions" | "completions", "id": "r1", "body": {…OpenAI request…}}
 *   → {"type": "cancel", "id": "r1"}
 *   ← {"type": "chunk", "id": "r1", "chunk": {…the same chunk objects as the SSE stream…}}
 *   ← {"type": "done", "id": "r1", "finish_reason": "stop" | "length" | "content_filter" | "cancelled"}
 *   ← {"type": "error", "id": "r1", "status": 400, "error": {…OpenAI error…}}
 */
const MESSAGE_TYPES: Record<string, Endpoint> = { 'chat.completions': 'chat', completions: 'completion' };

export interface WebSocketDeps {
  service: CompletionService;
  auth: Authenticator;
  metrics: ServerMetrics;
  log: (line: string) => void;
  refuseIfDraining: () => void;
  track: (p: Promise<unknown>) => void;
}

export class WebSocketGateway {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY_BYTES });

  constructor(private readonly deps: WebSocketDeps) {}

  /** Accepts an upgrade to /v1/ws after the same checks as REST (draining, API key); refuses with an HTTP error otherwise. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let key: ApiKey;
    try {
      if (!PLAIN_PATHS[url.pathname]) throw new ApiError(404, `Unknown WebSocket URL: ${url.pathname} (use ${Object.keys(PLAIN_PATHS).join(', ')})`, 'unknown_url');
      this.deps.refuseIfDraining();
      key = this.deps.auth.authenticate(req.headers.authorization, url.searchParams.get('api_key'));
    } catch (e) {
      const error = toApiError(e);
      const body = JSON.stringify(error.body);
      const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Connection: 'close', ...error.headers };
      socket.end(
        `HTTP/1.1 ${error.status} ${error.code}\r\n${Object.entries(headers)
          .map(([k, v]) => `${k}: ${v}`)
          .join('\r\n')}\r\n\r\n${body}`,
      );
      this.logLine(req, error.status, 0, { error: error.code ?? undefined });
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.connection(ws, req, key, url.pathname));
  }

  /** Closes every connection as "going away" (after draining). */
  closeAll(): void {
    for (const ws of this.wss.clients) ws.close(1001, 'server shutting down');
  }

  private connection(ws: WebSocket, req: IncomingMessage, key: ApiKey, path: string): void {
    const running = new Map<string, AbortController>();
    let plainCount = 0;
    ws.on('close', () => running.forEach((c) => c.abort()));
    ws.on('message', (data) => {
      const message = parseMessage(data.toString());
      if (message.plain) {
        const id = `plain-${++plainCount}`;
        const controller = new AbortController();
        running.set(id, controller);
        const endpoint = path === WS_PATH && !('messages' in message.plain) && 'prompt' in message.plain ? 'completion' : PLAIN_PATHS[path];
        return this.deps.track(this.run(ws, req, key, id, endpoint, message.plain, controller, true).finally(() => running.delete(id)));
      }
      if (message.type === 'cancel') return void (message.id && running.get(message.id)?.abort());
      const endpoint = MESSAGE_TYPES[String(message.type)];
      const refusal = message.error ?? this.refusal(message.id, endpoint, running);
      if (refusal) return this.send(ws, { type: 'error', id: message.id, ...errorFields(refusal) });
      const id = message.id!;
      const controller = new AbortController();
      running.set(id, controller);
      this.deps.track(this.run(ws, req, key, id, endpoint, message.body, controller).finally(() => running.delete(id)));
    });
  }

  private refusal(id: string | null, endpoint: Endpoint | undefined, running: Map<string, AbortController>): ApiError | undefined {
    if (!id) return new ApiError(400, "every request needs a string 'id'", 'invalid_value', 'id');
    if (!endpoint) return new ApiError(400, `'type' must be one of ${[...Object.keys(MESSAGE_TYPES), 'cancel'].join(', ')}`, 'invalid_value', 'type');
    if (running.has(id)) return new ApiError(400, `request ${id} is already running on this connection`, 'duplicate_id', 'id');
    return undefined;
  }

  private async run(ws: WebSocket, req: IncomingMessage, key: ApiKey, id: string, endpoint: Endpoint, body: unknown, controller: AbortController, plain = false): Promise<void> {
    const started = performance.now();
    try {
      this.deps.refuseIfDraining();
      const sink = { chunk: (chunk: object) => this.send(ws, plain ? chunk : { type: 'chunk', id, chunk }), complete: () => {} };
      const summary = await this.deps.service.handle(endpoint, body, key, controller.signal, sink, { forceStream: true, websocket: true });
      if (!plain) this.send(ws, { type: 'done', id, finish_reason: summary.end.reason, ...(summary.cache ? { cache: summary.cache } : {}) });
      this.logLine(req, 200, performance.now() - started, {
        key: key.name,
        model: summary.model,
        promptTokens: summary.end.promptTokens,
        completionTokens: summary.end.completionTokens,
        finish: summary.end.reason,
        cache: summary.cache,
      });
    } catch (e) {
      const error = toApiError(e);
      this.send(ws, plain ? error.body : { type: 'error', id, ...errorFields(error) });
      this.logLine(req, error.status, performance.now() - started, { key: key.name, error: error.code ?? undefined });
    }
  }

  private send(ws: WebSocket, message: object): void {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  }

  private logLine(req: IncomingMessage, status: number, ms: number, extra: Partial<Parameters<typeof formatAccessLine>[0]>): void {
    this.deps.metrics.requests.inc({ route: WS_PATH, status: String(status) });
    this.deps.log(formatAccessLine({ remote: req.socket.remoteAddress ?? '-', method: 'WS', path: WS_PATH, status, ms, transport: 'ws', ...extra }));
  }
}

/** A client message's fields (`plain`: a bare OpenAI request), or the error that says why it is not one. */
function parseMessage(text: string): { type?: unknown; id: string | null; body?: unknown; plain?: Record<string, unknown>; error?: ApiError } {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    message = undefined;
  }
  if (typeof message !== 'object' || message === null || Array.isArray(message)) {
    return { id: null, error: new ApiError(400, 'messages must be JSON objects', 'invalid_json') };
  }
  const { type, id, body } = message as Record<string, unknown>;
  if (type === undefined && body === undefined && ('messages' in message || 'prompt' in message)) return { id: null, plain: message as Record<string, unknown> };
  return { type, id: typeof id === 'string' && id ? id : null, body };
}

function errorFields(error: ApiError) {
  return { status: error.status, ...error.body };
}

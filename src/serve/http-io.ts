import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './openai/errors.js';

/** Request bodies above this are refused (413): a prompt never needs more. */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new ApiError(413, `the request body is over ${MAX_BODY_BYTES} bytes`, 'request_too_large');
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new ApiError(400, 'We could not parse the JSON body of your request: it must be valid JSON', 'invalid_json');
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, error: ApiError): void {
  sendJson(res, error.status, error.body, error.headers);
}

/** Server-sent events: one `data:` line per chunk, `[DONE]` at the end, as OpenAI streams. */
export class SseWriter {
  private started = false;

  constructor(private readonly res: ServerResponse) {}

  get open(): boolean {
    return this.started;
  }

  send(data: unknown): void {
    // The client may have gone between two tokens; its generation ends at the next step.
    if (this.res.destroyed) return;
    if (!this.started) {
      this.started = true;
      this.res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    }
    this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  done(): void {
    if (!this.res.destroyed) this.res.end('data: [DONE]\n\n');
  }
}

import { z } from 'zod';

/**
 * The few calls of Triton Inference Server's HTTP API (KServe v2 and its generate extension) that llmkit makes.
 *
 * Why HTTP generate_stream rather than gRPC streaming: it is plain fetch plus server-sent events (no protobuf
 * stubs, no gRPC dependency), it is one request per generation, so aborting the fetch closes exactly that
 * connection, and Triton answers a closed connection by cancelling the request (the Python model sees
 * `request.is_cancelled()` at its next token: tested in test/serve/triton.test.ts). A non-streamed answer goes
 * through generate_stream too: Triton's /generate refuses decoupled models.
 */

/**
 * One event of generate_stream: the outputs of llmkit's Triton model (assets/triton_generate.py) by name, or an
 * error. A 1-element output may come as a scalar or a list, depending on Triton's version.
 */
const TritonEventSchema = z.looseObject({
  error: z.string().optional(),
  token_id: z.union([z.number().int(), z.array(z.number().int()).min(1)]).optional(),
  finish_reason: z.string().optional(),
});
export type TritonEvent = z.infer<typeof TritonEventSchema>;

/** Milliseconds a health probe may take before Triton counts as unreachable. */
const PROBE_TIMEOUT_MS = 2000;

/**
 * Every request to Triton asks for its connection to be closed after it: Triton's graceful shutdown waits for
 * open connections, keep-alive ones included, and fetch keeps them pooled. A generation is one long request
 * anyway, and a probe a second costs one loopback or LAN handshake.
 */
const CLOSE = { Connection: 'close' };

export class TritonUnreachable extends Error {}

export class TritonClient {
  readonly url: string;

  constructor(url: string) {
    this.url = url.replace(/\/+$/, '');
  }

  /**
   * Null when the model is loaded and ready, else why not, in words. The server's readiness is asked first: on
   * SIGTERM Triton turns it off at once, while its models stay ready until they are unloaded.
   */
  async modelUnavailable(model: string): Promise<string | null> {
    try {
      const server = await fetch(`${this.url}/v2/health/ready`, { headers: CLOSE, signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
      if (!server.ok) return `Triton at ${this.url} is not ready (HTTP ${server.status}: shutting down or starting)`;
      const res = await fetch(`${this.url}/v2/models/${encodeURIComponent(model)}/ready`, { headers: CLOSE, signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
      return res.ok ? null : `Triton at ${this.url} has no ready model ${model}`;
    } catch (e) {
      return `Triton at ${this.url} is not reachable (${reason(e)})`;
    }
  }

  /** The models in Triton's repository and their states; throws TritonUnreachable when it does not answer. */
  async models(): Promise<{ name: string; state?: string }[]> {
    const res = await this.call(`${this.url}/v2/repository/index`, { method: 'POST', headers: CLOSE, body: '{}', signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    if (!res.ok) throw new Error(`Triton's repository index answered HTTP ${res.status}`);
    return (await res.json()) as { name: string; state?: string }[];
  }

  /** Streams one generation's events; aborting `signal` closes the connection, which cancels it in Triton. */
  async *generateStream(model: string, inputs: Record<string, unknown>, signal: AbortSignal): AsyncGenerator<TritonEvent> {
    const res = await this.call(`${this.url}/v2/models/${encodeURIComponent(model)}/generate_stream`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', ...CLOSE },
      body: JSON.stringify(inputs),
      signal,
    });
    if (!res.ok || !res.body) {
      const text = await res.text();
      throw new Error(`Triton answered HTTP ${res.status}: ${errorOf(text)}`);
    }
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const bytes of res.body) {
      buffered += decoder.decode(bytes as Uint8Array, { stream: true });
      let end: number;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const event = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const data = event
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trim())
          .join('');
        if (data) yield parseEvent(data);
      }
    }
  }

  /** fetch, with a refused or reset connection turned into TritonUnreachable. */
  private async call(url: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(url, init);
    } catch (e) {
      if (init.signal?.aborted) throw e;
      throw new TritonUnreachable(`Triton at ${this.url} is not reachable (${reason(e)})`);
    }
  }
}

/** The root cause of a failed fetch: undici hides ECONNREFUSED and timeouts in `cause`. */
function reason(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (e as Error).message;
}

function parseEvent(data: string): TritonEvent {
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    throw new Error(`Triton sent an event that is not JSON: ${data.slice(0, 200)}`);
  }
  const parsed = TritonEventSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new Error(`Triton sent an event llmkit's model does not send (${issue.path.join('.') || 'event'}: ${issue.message}): is the repository made by this llmkit's export --triton?`);
}

function errorOf(text: string): string {
  try {
    return (JSON.parse(text) as { error?: string }).error ?? text;
  } catch {
    return text;
  }
}

import OpenAI, { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import type { FinishReason, Streamer } from '../../engine/streamer.js';
import { ChatBackendError, type BackendInfo, type ChatBackend, type ReplyRequest } from './backend.js';

export interface RemoteBackendOptions {
  /** Base URL of the OpenAI-compatible API, e.g. http://localhost:8080/v1. */
  url: string;
  /** Model name; by default the first one the server lists. */
  model?: string;
  apiKey?: string;
}

/** Listing models at start-up must not hold the chat up for long when the server is away. */
const LIST_TIMEOUT_MS = 5000;

/** Fields some servers add to /v1/models entries (vLLM: max_model_len; llmkit serve: context_length, device). */
interface ModelEntry {
  id: string;
  context_length?: number;
  max_model_len?: number;
  device?: string;
}

/**
 * Replies from any OpenAI-compatible server through the `openai` client, streamed. The client's own
 * retries are off: a 429 comes back as a `rate_limited` error with Retry-After, so the chat can say
 * that it waits instead of hanging silently.
 */
export class RemoteChatBackend implements ChatBackend {
  private readonly client: OpenAI;
  private model: string | null;
  info: BackendInfo;

  constructor(private readonly opts: RemoteBackendOptions) {
    // The client insists on a key; servers without authentication ignore whatever is sent.
    this.client = new OpenAI({ baseURL: opts.url, apiKey: opts.apiKey ?? 'none', maxRetries: 0 });
    this.model = opts.model ?? null;
    this.info = { model: opts.model ?? '(server default)', device: new URL(opts.url).host, contextWindow: null };
  }

  /** Learns the model's name and context window from the server when it answers; the chat starts either way. */
  async connect(): Promise<void> {
    await this.describe(this.model).catch(() => undefined);
  }

  async listModels(): Promise<string[]> {
    return (await this.entries()).map((m) => m.id);
  }

  async useModel(name: string): Promise<BackendInfo> {
    const entries = await this.entries();
    if (!entries.some((m) => m.id === name)) {
      throw new ChatBackendError('bad_request', `${this.opts.url} has no model ${name}`, `it has: ${entries.map((m) => m.id).join(', ')}`);
    }
    return this.describe(name);
  }

  async reply({ messages, settings, signal }: ReplyRequest, streamer: Streamer): Promise<void> {
    const started = performance.now();
    const gaps: number[] = [];
    let firstAt: number | undefined;
    let lastAt = started;
    let chunks = 0;
    let usage: { prompt_tokens: number; completion_tokens: number } | undefined;
    let finish: string | null = null;
    const end = (reason: FinishReason, error?: Error) =>
      streamer.end({
        reason,
        // Without usage in the stream, each content chunk counts as one token (servers send one per chunk)
        // and the prompt's size is unknown (NaN: the status line then leaves the context out).
        promptTokens: usage?.prompt_tokens ?? NaN,
        completionTokens: usage?.completion_tokens ?? chunks,
        timeToFirstTokenMs: firstAt === undefined ? undefined : firstAt - started,
        interTokenMs: gaps,
        error,
      });
    try {
      const model = this.model ?? (await this.describe(null)).model;
      const stream = await this.client.chat.completions.create(
        {
          model,
          messages,
          temperature: settings.temperature,
          top_p: settings.topP,
          max_tokens: settings.maxTokens,
          ...(settings.seed === null ? {} : { seed: settings.seed }),
          stream: true,
          stream_options: { include_usage: true },
        },
        { signal },
      );
      for await (const chunk of stream) {
        if (chunk.usage) usage = chunk.usage;
        const choice = chunk.choices[0];
        if (choice?.finish_reason) finish = choice.finish_reason;
        const text = choice?.delta?.content;
        if (!text) continue;
        const now = performance.now();
        if (firstAt === undefined) firstAt = now;
        else gaps.push(now - lastAt);
        lastAt = now;
        chunks++;
        streamer.put(text);
      }
      end(signal.aborted ? 'cancelled' : finishReason(finish));
    } catch (e) {
      if (signal.aborted || e instanceof APIUserAbortError) end('cancelled');
      else end('error', chatError(e, this.opts.url));
    }
  }

  async close(): Promise<void> {}

  private async entries(): Promise<ModelEntry[]> {
    try {
      const page = await this.client.models.list({ timeout: LIST_TIMEOUT_MS });
      return page.data as ModelEntry[];
    } catch (e) {
      throw chatError(e, this.opts.url);
    }
  }

  /** Sets the model (the server's first when null) and what the server says about it. */
  private async describe(name: string | null): Promise<BackendInfo> {
    const entries = await this.entries();
    const entry = name === null ? entries[0] : entries.find((m) => m.id === name);
    if (!entry && name === null) throw new ChatBackendError('bad_request', `${this.opts.url} lists no models`, 'pass --model NAME');
    this.model = name ?? entry!.id;
    this.info = {
      model: this.model,
      device: entry?.device ?? new URL(this.opts.url).host,
      contextWindow: entry?.context_length ?? entry?.max_model_len ?? null,
    };
    return this.info;
  }
}

function finishReason(reason: string | null): FinishReason {
  return reason === 'length' || reason === 'content_filter' ? reason : 'stop';
}

/** Seconds to wait from Retry-After (seconds or an HTTP date) or the non-standard retry-after-ms. */
export function retryAfterSeconds(headers: Headers | undefined): number | undefined {
  const ms = Number(headers?.get('retry-after-ms'));
  if (ms > 0) return ms / 1000;
  const value = headers?.get('retry-after');
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

/** Turns what the openai client throws into a one-line error that says how to recover. */
export function chatError(e: unknown, url: string): ChatBackendError {
  if (e instanceof ChatBackendError) return e;
  if (e instanceof APIConnectionError) {
    const cause = (e.cause as { code?: string; cause?: { code?: string } } | undefined) ?? {};
    const code = cause.code ?? cause.cause?.code ?? e.message;
    return new ChatBackendError('unreachable', `cannot reach ${url} (${code})`, 'start the server (`llmkit serve MODEL`) or check --url; then send again');
  }
  if (!(e instanceof APIError)) return new ChatBackendError('server', e instanceof Error ? e.message : String(e));
  const body = (e.error ?? {}) as { message?: string; code?: string };
  const detail = body.message ?? e.message;
  const status = e.status ?? 0;
  if (status === 401 || status === 403) {
    return new ChatBackendError('unauthorized', `${url} refused the API key (${status}: ${detail})`, 'restart with --api-key KEY (or set LLMKIT_API_KEY)');
  }
  if (status === 429) {
    const wait = retryAfterSeconds(e.headers);
    return new ChatBackendError('rate_limited', `rate limited by ${url} (429: ${detail})`, undefined, wait);
  }
  if (body.code === 'context_length_exceeded' || e.code === 'context_length_exceeded' || /context (length|window)|too long/i.test(detail)) {
    return new ChatBackendError('context_too_long', `the conversation no longer fits the model's context (${detail})`, '/clear starts a new conversation; /max lowers the reply length');
  }
  if (status === 404) return new ChatBackendError('bad_request', `${url}: ${detail} (404)`, '/model lists the models the server has; check --url (it ends in /v1)');
  if (status >= 500) return new ChatBackendError('server', `${url} failed (${status}: ${detail})`, 'send again, or look at the server log');
  return new ChatBackendError('bad_request', `${url} rejected the request (${status}: ${detail})`);
}

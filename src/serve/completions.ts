import { randomBytes } from 'node:crypto';
import type { TextRequest } from '../engine/engine.js';
import { EngineRejection } from '../engine/generation-scheduler.js';
import { TextCollector, type GenerationEnd } from '../engine/streamer.js';
import type { ApiKey } from './auth.js';
import type { ContentFilter } from './content-filter.js';
import type { ModelRegistry, ServedModel } from './model-registry.js';
import { ApiError, invalidParam } from './openai/errors.js';
import { ChatRequestSchema, CompletionRequestSchema, parseRequest } from './openai/schemas.js';
import { chatCompletion, chunk, completion, fromChatRequest, fromCompletionRequest, usageChunk, type Endpoint, type NativeRequest, type ResponseMeta } from './openai/translate.js';
import { requestFeatures, type QuotaTracker } from './quotas.js';
import { recordPieces, type ResponseCache } from './response-cache.js';
import type { ServerMetrics } from './server-metrics.js';

/** Where a response goes; the transport frames it (JSON body, SSE events, WebSocket messages). */
export interface ResponseSink {
  /** With `stream: true`: one chunk object. */
  chunk(chunk: object): void;
  /** With `stream: false`: the whole response object. */
  complete(response: object): void;
  /** Before anything else, for cacheable requests when the cache is on: whether the answer comes from it. */
  cacheStatus?(status: 'hit' | 'miss'): void;
}

/** What the access log says about a generation. */
export interface GenerationSummary {
  model: string;
  stream: boolean;
  end: GenerationEnd;
  cache?: 'hit' | 'miss';
}

export interface CompletionServiceDeps {
  models: ModelRegistry;
  quotas: QuotaTracker;
  metrics: ServerMetrics;
  filter?: ContentFilter;
  cache?: ResponseCache;
}

/** Seconds a client is asked to wait when the queue is full. */
const QUEUE_RETRY_AFTER_S = 1;

/**
 * The one native handler behind /v1/chat/completions, /v1/completions and the WebSocket: validate,
 * route, tokenize, check the context and the quotas, answer from the response cache or queue, then stream or collect the answer.
 * Everything that can be refused is refused (as an ApiError) before anything is queued or sent.
 */
export class CompletionService {
  constructor(private readonly deps: CompletionServiceDeps) {}

  async handle(endpoint: Endpoint, body: unknown, key: ApiKey, signal: AbortSignal, sink: ResponseSink, opts: { forceStream?: boolean; websocket?: boolean } = {}): Promise<GenerationSummary> {
    const native = endpoint === 'chat' ? fromChatRequest(parseRequest(ChatRequestSchema, body)) : fromCompletionRequest(parseRequest(CompletionRequestSchema, body));
    const stream = native.stream || opts.forceStream === true;
    const served = this.deps.models.resolve(native.model);
    const promptIds = this.promptIds(served, native);
    this.checkContext(served, native, promptIds.length);
    const features = requestFeatures(body, { stream, websocket: opts.websocket === true, promptTokens: promptIds.length, longContextTokens: this.deps.quotas.longContextTokens });
    const admission = await this.deps.quotas.admit({ key, model: served, features, promptTokens: promptIds.length });

    const meta: ResponseMeta = { id: `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`, model: served.id, created: Math.floor(Date.now() / 1000) };
    const cacheKey = this.deps.cache?.keyFor({ key, served, native, promptIds, body, features });
    const cached = cacheKey ? await this.deps.cache!.get(cacheKey) : undefined;
    if (cacheKey) sink.cacheStatus?.(cached ? 'hit' : 'miss');
    if (cached) {
      const end: GenerationEnd = { reason: cached.reason, promptTokens: cached.promptTokens, completionTokens: cached.completionTokens, interTokenMs: [] };
      if (stream && endpoint === 'chat') sink.chunk(chunk(endpoint, meta, { role: true }, native.includeUsage));
      if (stream) for (const text of cached.pieces) sink.chunk(chunk(endpoint, meta, { text }, native.includeUsage));
      this.answer(endpoint, native, meta, stream, sink, cached.pieces.join(''), end);
      await admission.finish(end.completionTokens);
      return { model: served.id, stream, end, cache: 'hit' };
    }

    const filterStop = new AbortController();
    const request: TextRequest = {
      promptIds,
      maxTokens: native.maxTokens,
      sampling: native.sampling,
      stop: native.stop,
      ignoreEos: native.ignoreEos,
      signal: AbortSignal.any([signal, filterStop.signal]),
    };
    const collector = new TextCollector();
    const recorded = recordPieces(
      stream
        ? {
            put: (text) => sink.chunk(chunk(endpoint, meta, { text }, native.includeUsage)),
            end: (end) => collector.end(end),
          }
        : collector,
    );
    const filtered = this.deps.filter ? this.deps.filter.wrapOutput(recorded.streamer, () => filterStop.abort()) : recorded.streamer;
    try {
      served.engine.generate(request, filtered);
    } catch (e) {
      await admission.refund();
      throw rejection(e);
    }
    if (stream && endpoint === 'chat') sink.chunk(chunk(endpoint, meta, { role: true }, native.includeUsage));

    const end = await collector.done;
    await admission.finish(end.completionTokens);
    this.deps.metrics.recordGeneration(served.id, end);
    if (end.reason === 'error') throw new ApiError(500, `generation failed: ${end.error?.message ?? 'unknown error'}`, 'generation_failed');
    if (cacheKey) await this.deps.cache!.set(cacheKey, { pieces: recorded.pieces, reason: end.reason, promptTokens: end.promptTokens, completionTokens: end.completionTokens });
    this.answer(endpoint, native, meta, stream, sink, collector.text, end);
    return { model: served.id, stream, end, cache: cacheKey ? 'miss' : undefined };
  }

  /** The whole response, or the stream's last chunks (finish reason, then usage if asked). */
  private answer(endpoint: Endpoint, native: NativeRequest, meta: ResponseMeta, stream: boolean, sink: ResponseSink, text: string, end: GenerationEnd): void {
    if (end.reason === 'cancelled') return;
    if (!stream) return sink.complete((endpoint === 'chat' ? chatCompletion : completion)(meta, text, end));
    sink.chunk(chunk(endpoint, meta, { finish: end.reason }, native.includeUsage));
    if (native.includeUsage) sink.chunk(usageChunk(endpoint, meta, end));
  }

  private promptIds(served: ServedModel, native: NativeRequest): number[] {
    const { tokenizer, model } = served.engine;
    const filter = this.deps.filter;
    const input = native.input;
    if ('messages' in input) {
      if (!tokenizer.hasChatTemplate) throw invalidParam('messages', `model ${served.id} has no chat template: use /v1/completions`, 'no_chat_template');
      const messages = input.messages.map((m, i) => ({ ...m, content: filter ? filter.checkInput(m.content, `messages[${i}].content`) : m.content }));
      try {
        return tokenizer.encodeChat(messages);
      } catch (e) {
        // Templates raise on conversations they do not support (a system turn, roles out of order).
        throw invalidParam('messages', `the chat template of ${served.id} refused these messages: ${(e as Error).message}`);
      }
    }
    if ('text' in input) return tokenizer.encode(filter ? filter.checkInput(input.text, 'prompt') : input.text);
    const vocab = model.manifest.vocab_size;
    const bad = input.ids.find((id) => id >= vocab);
    if (bad !== undefined) throw invalidParam('prompt', `Invalid 'prompt': token id ${bad} is outside the vocabulary (0..${vocab - 1})`);
    return input.ids;
  }

  /** Never truncate: a prompt that does not fit, or does not leave room for max_tokens, is a 400. */
  private checkContext(served: ServedModel, native: NativeRequest, prompt: number): void {
    const context = served.engine.contextLength;
    const param = native.endpoint === 'chat' ? 'messages' : 'prompt';
    if (prompt >= context) {
      throw invalidParam(param, `This model's maximum context length is ${context} tokens. However, your ${param} resulted in ${prompt} tokens. Please reduce the length of the ${param}.`, 'context_length_exceeded');
    }
    if (native.maxTokens !== undefined && prompt + native.maxTokens > context) {
      throw invalidParam(
        'max_tokens',
        `This model's maximum context length is ${context} tokens. However, you requested ${prompt + native.maxTokens} tokens (${prompt} in the ${param}, ${native.maxTokens} in the completion). Please reduce the length of the ${param} or the completion.`,
        'context_length_exceeded',
      );
    }
  }
}

function rejection(e: unknown): unknown {
  if (!(e instanceof EngineRejection)) return e;
  switch (e.code) {
    case 'queue_full':
      return new ApiError(503, `The server is busy: ${e.message}. Try again shortly.`, 'queue_full', null, { 'Retry-After': String(QUEUE_RETRY_AFTER_S) });
    case 'empty_prompt':
      return invalidParam('prompt', 'the prompt is empty');
    case 'context_length_exceeded':
      return invalidParam('max_tokens', e.message, 'context_length_exceeded');
    case 'too_many_tokens':
      return invalidParam('max_tokens', e.message, 'too_many_tokens');
  }
}

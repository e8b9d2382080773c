import type { Choice, TextRequest } from '../engine/engine-contract.js';
import { EngineRejection } from '../engine/engine-contract.js';
import type { GenerationEnd } from '../engine/streamer.js';
import type { ApiKey } from './access/auth.js';
import type { Admission, QuotaTracker } from './access/quotas.js';
import { ChoiceOutput } from './choice-output.js';
import type { ContentFilter } from './content-filter.js';
import type { ModelRegistry } from './model-registry.js';
import { ApiError, invalidParam } from './openai/errors.js';
import { OutputValidator } from './output-validation.js';
import { chatCompletion, chunk, completion, usageChunk, type Endpoint } from './openai/translate.js';
import { RequestPreparer, type PrepareOptions, type PreparedRequest } from './prepared-request.js';
import { recordPieces, type CachedAnswer, type ResponseCache } from './response-cache.js';
import type { ServerMetrics } from './server-metrics.js';

/** Where a response goes; the transport frames it (JSON body, SSE events, WebSocket messages). */
export interface ResponseSink {
  /** With `stream: true`: one chunk object. */
  chunk(chunk: object): void;
  /** With `stream: false`: the whole response object. */
  complete(response: object): void;
  /** Before anything else, for cacheable requests when the cache is on: whether the answer comes from it. */
  cacheStatus?(status: 'hit' | 'miss'): void;
  /** Once the request is in the engine's queue (not called for a cache hit or a refusal). */
  queued?(): void;
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
/** Seconds a client is asked to wait while the engine (a Triton server) cannot be reached. */
const UNAVAILABLE_RETRY_AFTER_S = 5;

/**
 * The one native handler behind /v1/chat/completions, /v1/completions and the WebSocket:
 * prepare (validate, route, tokenize, check the context, compile the grammar) → admit (quotas) → replay the
 * answer from the response cache or generate it → respond (one JSON body, or the stream's closing chunks).
 * Everything that can be refused is refused (as an ApiError) before anything is queued or sent.
 */
export class CompletionService {
  private readonly preparer: RequestPreparer;

  private readonly validator = new OutputValidator();

  constructor(private readonly deps: CompletionServiceDeps) {
    this.preparer = new RequestPreparer({ models: deps.models, longContextTokens: deps.quotas.longContextTokens, filter: deps.filter, cache: deps.cache });
  }

  async handle(endpoint: Endpoint, body: unknown, key: ApiKey, signal: AbortSignal, given: ResponseSink, opts: PrepareOptions = {}): Promise<GenerationSummary> {
    // An interactive request is announced to the engines while it is prepared (see GenerationScheduler.arriving), on
    // every transport: a WebSocket message arrives whole, and HTTP has announced it since its headers already.
    const announced = opts.lane === 'batch' ? undefined : this.deps.models.arriving();
    const sink: ResponseSink = { ...given, queued: () => (announced?.(), given.queued?.()) };
    try {
      return await this.handlePrepared(endpoint, body, key, signal, sink, opts);
    } finally {
      announced?.();
    }
  }

  private async handlePrepared(endpoint: Endpoint, body: unknown, key: ApiKey, signal: AbortSignal, sink: ResponseSink, opts: PrepareOptions): Promise<GenerationSummary> {
    const request = await this.preparer.prepare(endpoint, body, key, opts);
    try {
      const admission = await this.deps.quotas.admit({ key, model: request.served, features: request.features, promptTokens: request.promptIds.length });
      const cached = request.cacheKey ? await this.deps.cache!.get(request.cacheKey, request.served.id) : undefined;
      if (request.cacheKey) sink.cacheStatus?.(cached ? 'hit' : 'miss');
      const outputs = choiceOutputs(request, sink);
      const ends = cached ? await replay(request, cached, outputs[0], admission, sink) : await this.generate(request, outputs, admission, signal, sink);
      this.validator.check(
        request,
        outputs.map((o) => o.text),
        ends,
      );
      respond(request, outputs, ends, sink);
      return { model: request.served.id, stream: request.stream, end: combined(ends), cache: request.cacheKey ? (cached ? 'hit' : 'miss') : undefined };
    } finally {
      request.dispose();
    }
  }

  /** Runs the request on the model's engine; settles the admission, metrics and the cache entry once every choice ended. */
  private async generate(request: PreparedRequest, outputs: ChoiceOutput[], admission: Admission, signal: AbortSignal, sink: ResponseSink): Promise<GenerationEnd[]> {
    const { native, served, cacheKey } = request;
    const filterStop = new AbortController();
    const text: TextRequest = {
      promptIds: request.promptIds,
      maxTokens: native.maxTokens,
      sampling: native.sampling,
      stop: native.stop,
      ignoreEos: native.ignoreEos,
      signal: AbortSignal.any([signal, filterStop.signal]),
      logprobs: native.logprobs,
      lane: request.lane,
    };
    // A cacheable request has one choice and nothing but text: its pieces are what a cache entry replays.
    const recorded = cacheKey ? recordPieces(outputs[0]) : undefined;
    // With a seed, choice i samples with seed + i: n different answers, the same ones on every call.
    const seed = native.sampling.seed;
    const choices: Choice[] = outputs.map((output, i) => {
      const streamer = i === 0 && recorded ? recorded.streamer : output;
      return {
        streamer: this.deps.filter ? this.deps.filter.wrapOutput(streamer, () => filterStop.abort()) : streamer,
        processor: request.constraints[i],
        seed: seed === undefined ? undefined : seed + i,
      };
    });
    try {
      served.engine.generateChoices(text, choices);
      sink.queued?.();
    } catch (e) {
      await admission.refund();
      throw rejection(e);
    }
    openStreams(request, outputs.length, sink);
    const ends = await Promise.all(outputs.map((o) => o.done));
    await admission.finish(ends.reduce((n, e) => n + e.completionTokens, 0));
    for (const end of ends) this.deps.metrics.recordGeneration(served.id, end);
    const failed = ends.find((e) => e.reason === 'error');
    if (failed) {
      // A remote engine can refuse after the request left (Triton went down): that is a 503, not a failure here.
      throw failed.error instanceof EngineRejection ? rejection(failed.error) : new ApiError(500, `generation failed: ${failed.error?.message ?? 'unknown error'}`, 'generation_failed');
    }
    const end = firstEnd(ends);
    if (cacheKey) await this.deps.cache!.set(cacheKey, { pieces: recorded!.pieces, reason: end.reason, promptTokens: end.promptTokens, completionTokens: end.completionTokens });
    return ends;
  }
}

/** One output per choice; with `tool_choice: 'none'` calls are not parsed out of the text. */
function choiceOutputs({ native, stream, endpoint, meta, tools }: PreparedRequest, sink: ResponseSink): ChoiceOutput[] {
  const streaming = stream ? { endpoint, meta, includeUsage: native.includeUsage, send: (c: object) => sink.chunk(c) } : undefined;
  return Array.from({ length: native.n }, (_, i) => new ChoiceOutput(i, streaming, tools?.choice === 'none' ? undefined : tools, native.logprobs !== undefined));
}

/** A chat stream opens each choice with the assistant's role. */
function openStreams({ stream, endpoint, meta, native }: PreparedRequest, n: number, sink: ResponseSink): void {
  if (!stream || endpoint !== 'chat') return;
  for (let index = 0; index < n; index++) sink.chunk(chunk(endpoint, meta, { index, role: true }, native.includeUsage));
}

/** A cached answer goes out piece by piece through the same output a generation uses, so a cached stream still streams. */
async function replay(request: PreparedRequest, cached: CachedAnswer, output: ChoiceOutput, admission: Admission, sink: ResponseSink): Promise<GenerationEnd[]> {
  const end: GenerationEnd = { reason: cached.reason, promptTokens: cached.promptTokens, completionTokens: cached.completionTokens, interTokenMs: [] };
  openStreams(request, 1, sink);
  for (const text of cached.pieces) output.put(text);
  output.end(end);
  // A cached answer costs its tokens as a generated one does.
  await admission.finish(end.completionTokens);
  return [end];
}

/** The whole response (no stream), or a stream's closing chunks; nothing after a cancel (the client is gone). */
function respond({ stream, endpoint, meta, native }: PreparedRequest, outputs: readonly ChoiceOutput[], ends: readonly GenerationEnd[], sink: ResponseSink): void {
  if (firstEnd(ends).reason === 'cancelled') return;
  const results = outputs.map((o, i) => o.result(ends[i]));
  if (!stream) sink.complete((endpoint === 'chat' ? chatCompletion : completion)(meta, results));
  else if (native.includeUsage) sink.chunk(usageChunk(endpoint, meta, ends));
}

/** A cancelled choice speaks for the request (the client went away). */
function firstEnd(ends: readonly GenerationEnd[]): GenerationEnd {
  return ends.find((e) => e.reason === 'cancelled') ?? ends[0];
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
    case 'unsupported':
      return new ApiError(400, e.message, 'unsupported_by_engine');
    case 'unavailable':
      return new ApiError(503, e.message, 'engine_unavailable', null, { 'Retry-After': String(UNAVAILABLE_RETRY_AFTER_S) });
  }
}

/** The access log's view of a response: the first choice's reasons, every choice's tokens. */
function combined(ends: readonly GenerationEnd[]): GenerationEnd {
  return { ...ends[0], completionTokens: ends.reduce((n, e) => n + e.completionTokens, 0) };
}

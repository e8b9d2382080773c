import { randomBytes } from 'node:crypto';
import type { Choice, TextRequest } from '../engine/engine.js';
import { EngineRejection, type Lane } from '../engine/generation-scheduler.js';
import type { GenerationEnd } from '../engine/streamer.js';
import type { ApiKey } from './auth.js';
import { ChoiceOutput, type ToolParsing } from './choice-output.js';
import type { ContentFilter } from './content-filter.js';
import type { ModelRegistry, ServedModel } from './model-registry.js';
import { ApiError, invalidParam } from './openai/errors.js';
import { ChatRequestSchema, CompletionRequestSchema, parseRequest } from './openai/schemas.js';
import { GrammarError, ModelGrammars, type GrammarConstraint, type GrammarSpec } from './grammar/model-grammars.js';
import { readVocabulary, tokenBytes } from './grammar/vocabulary.js';
import { toolCallGrammar, toolFormat, type ToolChoice } from './openai/tools.js';
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
/** Seconds a client is asked to wait while the engine (a Triton server) cannot be reached. */
const UNAVAILABLE_RETRY_AFTER_S = 5;

/**
 * The one native handler behind /v1/chat/completions, /v1/completions and the WebSocket: validate,
 * route, tokenize, check the context and the quotas, answer from the response cache or queue, then stream or collect the answer.
 * Everything that can be refused is refused (as an ApiError) before anything is queued or sent.
 */
export class CompletionService {
  /** Each model's compiled grammars (structured outputs, forced tool calls). */
  private readonly grammars = new Map<ServedModel, ModelGrammars>();
  /** Each model's token → bytes table (logprobs), read on first use. */
  private readonly bytes = new Map<ServedModel, (id: number) => number[]>();

  constructor(private readonly deps: CompletionServiceDeps) {}

  async handle(
    endpoint: Endpoint,
    body: unknown,
    key: ApiKey,
    signal: AbortSignal,
    sink: ResponseSink,
    opts: { forceStream?: boolean; websocket?: boolean; lane?: Lane } = {},
  ): Promise<GenerationSummary> {
    const native = endpoint === 'chat' ? fromChatRequest(parseRequest(ChatRequestSchema, body)) : fromCompletionRequest(parseRequest(CompletionRequestSchema, body));
    const stream = native.stream || opts.forceStream === true;
    const served = this.deps.models.resolve(native.model);
    const tools = toolParsing(served, native);
    const promptIds = this.promptIds(served, native);
    this.checkContext(served, native, promptIds.length);
    const features = requestFeatures(body, { stream, websocket: opts.websocket === true, batch: opts.lane === 'batch', promptTokens: promptIds.length, longContextTokens: this.deps.quotas.longContextTokens });
    const constraints = await this.constraints(served, native, tools);
    let admission;
    try {
      admission = await this.deps.quotas.admit({ key, model: served, features, promptTokens: promptIds.length });
    } catch (e) {
      for (const c of constraints) c?.dispose();
      throw e;
    }

    const meta: ResponseMeta = {
      id: `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`,
      model: served.id,
      created: Math.floor(Date.now() / 1000),
      tokenText: (id) => served.engine.tokenizer.tokenText(id),
      tokenBytes: (id) => this.tokenBytes(served)(id),
    };
    // Answers with several choices, logprobs or tool calls are never cached (see ResponseCache).
    const cacheKey = this.deps.cache?.keyFor({ key, served, native, promptIds, body, features });
    const cached = cacheKey ? await this.deps.cache!.get(cacheKey) : undefined;
    if (cacheKey) sink.cacheStatus?.(cached ? 'hit' : 'miss');
    if (cached) {
      for (const c of constraints) c?.dispose();
      const end: GenerationEnd = { reason: cached.reason, promptTokens: cached.promptTokens, completionTokens: cached.completionTokens, interTokenMs: [] };
      if (stream && endpoint === 'chat') sink.chunk(chunk(endpoint, meta, { index: 0, role: true }, native.includeUsage));
      if (stream) for (const text of cached.pieces) sink.chunk(chunk(endpoint, meta, { index: 0, text }, native.includeUsage));
      if (end.reason !== 'cancelled') {
        if (!stream) sink.complete((endpoint === 'chat' ? chatCompletion : completion)(meta, [{ text: cached.pieces.join(''), end }]));
        else {
          sink.chunk(chunk(endpoint, meta, { index: 0, finish: end.reason }, native.includeUsage));
          if (native.includeUsage) sink.chunk(usageChunk(endpoint, meta, [end]));
        }
      }
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
      logprobs: native.logprobs,
      lane: opts.lane,
    };
    const streaming = stream ? { endpoint, meta, includeUsage: native.includeUsage, send: (c: object) => sink.chunk(c) } : undefined;
    const outputs = Array.from({ length: native.n }, (_, i) => new ChoiceOutput(i, streaming, tools?.choice === 'none' ? undefined : tools, native.logprobs !== undefined));
    // A cacheable request has one choice and nothing but text: its pieces are what a cache entry replays.
    const recorded = cacheKey ? recordPieces(outputs[0]) : undefined;
    // With a seed, choice i samples with seed + i: n different answers, the same ones on every call.
    const seed = native.sampling.seed;
    const choices: Choice[] = outputs.map((output, i) => {
      const streamer = i === 0 && recorded ? recorded.streamer : output;
      return { streamer: this.deps.filter ? this.deps.filter.wrapOutput(streamer, () => filterStop.abort()) : streamer, processor: constraints[i], seed: seed === undefined ? undefined : seed + i };
    });
    try {
      try {
        served.engine.generateChoices(request, choices);
      } catch (e) {
        await admission.refund();
        throw rejection(e);
      }
      if (stream && endpoint === 'chat') outputs.forEach((_, index) => sink.chunk(chunk(endpoint, meta, { index, role: true }, native.includeUsage)));

      const ends = await Promise.all(outputs.map((o) => o.done));
      await admission.finish(ends.reduce((n, e) => n + e.completionTokens, 0));
      for (const end of ends) this.deps.metrics.recordGeneration(served.id, end);
      const failed = ends.find((e) => e.reason === 'error');
      if (failed) {
        // A remote engine can refuse after the request left (Triton went down): that is a 503, not a failure here.
        throw failed.error instanceof EngineRejection ? rejection(failed.error) : new ApiError(500, `generation failed: ${failed.error?.message ?? 'unknown error'}`, 'generation_failed');
      }
      const end = ends.find((e) => e.reason === 'cancelled') ?? ends[0];
      if (cacheKey) await this.deps.cache!.set(cacheKey, { pieces: recorded!.pieces, reason: end.reason, promptTokens: end.promptTokens, completionTokens: end.completionTokens });
      if (end.reason !== 'cancelled') {
        const results = outputs.map((o, i) => o.result(ends[i]));
        if (!stream) sink.complete((endpoint === 'chat' ? chatCompletion : completion)(meta, results));
        else if (native.includeUsage) sink.chunk(usageChunk(endpoint, meta, ends));
      }
      return { model: served.id, stream, end: combined(ends), cache: cacheKey ? 'miss' : undefined };
    } finally {
      for (const c of constraints) c?.dispose();
    }
  }

  private tokenBytes(served: ServedModel): (id: number) => number[] {
    let bytes = this.bytes.get(served);
    if (!bytes) this.bytes.set(served, (bytes = tokenBytes(readVocabulary(served.engine.model.dir))));
    return bytes;
  }

  /** One grammar constraint per choice, from response_format or a forced tool call; compiled once per schema. */
  private async constraints(served: ServedModel, native: NativeRequest, tools: (ToolParsing & { choice: ToolChoice }) | undefined): Promise<(GrammarConstraint | undefined)[]> {
    const forced = tools && (tools.choice === 'required' || typeof tools.choice === 'object') ? toolCallGrammar(tools.format, tools.specs, tools.choice) : undefined;
    if (forced && native.format) throw invalidParam('response_format', "response_format cannot be combined with tool_choice 'required' or a named function: the reply is the call");
    const spec: GrammarSpec | undefined =
      forced ?? (native.format?.type === 'json_object' ? { kind: 'json_object' } : native.format ? { kind: 'json_schema', schema: native.format.schema, strict: native.format.strict } : undefined);
    if (!spec) return [];
    let grammars = this.grammars.get(served);
    if (!grammars)
      this.grammars.set(
        served,
        (grammars = new ModelGrammars({ dir: served.engine.model.dir, vocabSize: served.engine.model.manifest.vocab_size, stopTokenIds: served.engine.model.manifest.eos_token_ids })),
      );
    try {
      await grammars.compile(spec);
    } catch (e) {
      if (!(e instanceof GrammarError)) throw e;
      throw forced
        ? invalidParam('tools', `Invalid 'tools': a function's parameters could not be compiled to a grammar: ${e.message}`)
        : invalidParam('response_format.json_schema.schema', `Invalid schema: ${e.message}`);
    }
    return Promise.all(Array.from({ length: native.n }, () => grammars.constraint(spec)));
  }

  private promptIds(served: ServedModel, native: NativeRequest): number[] {
    const { tokenizer, model } = served.engine;
    const filter = this.deps.filter;
    const input = native.input;
    if ('messages' in input) {
      if (!tokenizer.hasChatTemplate) throw invalidParam('messages', `model ${served.id} has no chat template: use /v1/completions`, 'no_chat_template');
      if (tokenizer.chatTemplateError) throw invalidParam('messages', `model ${served.id}: ${tokenizer.chatTemplateError}: use /v1/completions`, 'chat_template_unsupported');
      const messages = input.messages.map((m, i) => ({ ...m, content: filter ? filter.checkInput(m.content, `messages[${i}].content`) : m.content }));
      try {
        return tokenizer.encodeChat(messages, { ...input.template, tools: native.tools?.specs });
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
      throw invalidParam(
        param,
        `This model's maximum context length is ${context} tokens. However, your ${param} resulted in ${prompt} tokens. Please reduce the length of the ${param}.`,
        'context_length_exceeded',
      );
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
    case 'unsupported':
      return new ApiError(400, e.message, 'unsupported_by_engine');
    case 'unavailable':
      return new ApiError(503, e.message, 'engine_unavailable', null, { 'Retry-After': String(UNAVAILABLE_RETRY_AFTER_S) });
  }
}

/** How this request's tool calls are parsed; a 400 when the model's template takes no tools. */
function toolParsing(served: ServedModel, native: NativeRequest): (ToolParsing & { choice: ToolChoice }) | undefined {
  if (!native.tools) return undefined;
  const format = toolFormat(served.engine.tokenizer.chatTemplate);
  if (!format) {
    throw invalidParam(
      'tools',
      `model ${served.id} does not support tools: its chat template takes no 'tools' in a format llmkit parses (Hermes <tool_call> blocks as in Qwen, or Llama 3.1 JSON calls)`,
      'tools_not_supported',
    );
  }
  const { specs, choice } = native.tools;
  if (typeof choice === 'object' && !specs.some((t) => t.function.name === choice.name)) {
    throw invalidParam('tool_choice', `Invalid 'tool_choice': no function named '${choice.name}' is in 'tools'`);
  }
  return { format, specs, choice };
}

/** The access log's view of a response: the first choice's reasons, every choice's tokens. */
function combined(ends: readonly GenerationEnd[]): GenerationEnd {
  return { ...ends[0], completionTokens: ends.reduce((n, e) => n + e.completionTokens, 0) };
}

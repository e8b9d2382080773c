import type { SamplingParams } from '../../engine/sampling.js';
import type { FinishReason, GenerationEnd } from '../../engine/streamer.js';
import type { ChatMessage } from '../../engine/tokenizer.js';
import type { ChatRequest, CompletionRequest } from './schemas.js';

/**
 * The translation layer: OpenAI requests to llmkit's native request, and generation events back to
 * OpenAI's response and chunk objects. Pure functions; the transport (JSON, SSE, WebSocket) is elsewhere.
 */

export type Endpoint = 'chat' | 'completion';

/** What the server generates for one request, whatever API shape it came in. */
export interface NativeRequest {
  endpoint: Endpoint;
  /** `name` or `name@version`. */
  model: string;
  input: { messages: ChatMessage[] } | { text: string } | { ids: number[] };
  /** Undefined: whatever is left of the context. */
  maxTokens?: number;
  sampling: Partial<SamplingParams>;
  stop: string[];
  ignoreEos: boolean;
  stream: boolean;
  includeUsage: boolean;
}

/** OpenAI's legacy completions default to 16 new tokens. */
const COMPLETION_DEFAULT_MAX_TOKENS = 16;

function common(r: ChatRequest | CompletionRequest): Omit<NativeRequest, 'endpoint' | 'input' | 'maxTokens'> {
  const sampling: Partial<SamplingParams> = {};
  if (r.temperature != null) sampling.temperature = r.temperature;
  if (r.top_p != null) sampling.topP = r.top_p;
  if (r.top_k != null) sampling.topK = r.top_k;
  if (r.frequency_penalty != null) sampling.frequencyPenalty = r.frequency_penalty;
  if (r.presence_penalty != null) sampling.presencePenalty = r.presence_penalty;
  if (r.repetition_penalty != null) sampling.repetitionPenalty = r.repetition_penalty;
  if (r.seed != null) sampling.seed = r.seed;
  return {
    model: r.model,
    sampling,
    stop: r.stop == null ? [] : typeof r.stop === 'string' ? [r.stop] : r.stop,
    ignoreEos: r.ignore_eos ?? false,
    stream: r.stream ?? false,
    includeUsage: r.stream_options?.include_usage ?? false,
  };
}

export function fromChatRequest(r: ChatRequest): NativeRequest {
  const messages = r.messages.map((m) => ({
    role: m.role === 'developer' ? 'system' : m.role,
    content: typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text).join(''),
  }));
  return { ...common(r), endpoint: 'chat', input: { messages }, maxTokens: r.max_completion_tokens ?? r.max_tokens ?? undefined };
}

export function fromCompletionRequest(r: CompletionRequest): NativeRequest {
  const input = typeof r.prompt === 'string' ? { text: r.prompt } : typeof r.prompt[0] === 'string' ? { text: r.prompt[0] } : { ids: r.prompt as number[] };
  return { ...common(r), endpoint: 'completion', input, maxTokens: r.max_tokens ?? COMPLETION_DEFAULT_MAX_TOKENS };
}

/** Identifies one response; every chunk of a stream repeats it. */
export interface ResponseMeta {
  id: string;
  model: string;
  /** Unix seconds. */
  created: number;
}

export type OpenAiFinishReason = 'stop' | 'length' | 'content_filter';

export function finishReason(reason: FinishReason): OpenAiFinishReason {
  return reason === 'length' || reason === 'content_filter' ? reason : 'stop';
}

export function usage(end: GenerationEnd) {
  return { prompt_tokens: end.promptTokens, completion_tokens: end.completionTokens, total_tokens: end.promptTokens + end.completionTokens };
}

export function chatCompletion(meta: ResponseMeta, text: string, end: GenerationEnd) {
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finishReason(end.reason) }],
    usage: usage(end),
  };
}

export function completion(meta: ResponseMeta, text: string, end: GenerationEnd) {
  return {
    id: meta.id,
    object: 'text_completion',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason(end.reason) }],
    usage: usage(end),
  };
}

/**
 * One streamed chunk. Chat streams open with the assistant role and close with an empty delta that
 * carries the finish reason; with `include_usage`, every chunk has `usage: null` and a last chunk
 * with no choices carries the totals.
 */
export function chunk(endpoint: Endpoint, meta: ResponseMeta, piece: { text?: string; role?: boolean; finish?: FinishReason }, includeUsage: boolean) {
  const finish = piece.finish ? finishReason(piece.finish) : null;
  const choice =
    endpoint === 'chat'
      ? { index: 0, delta: piece.finish ? {} : { ...(piece.role ? { role: 'assistant' } : {}), content: piece.text ?? '' }, logprobs: null, finish_reason: finish }
      : { index: 0, text: piece.text ?? '', logprobs: null, finish_reason: finish };
  return { ...chunkHead(endpoint, meta), choices: [choice], ...(includeUsage ? { usage: null } : {}) };
}

export function usageChunk(endpoint: Endpoint, meta: ResponseMeta, end: GenerationEnd) {
  return { ...chunkHead(endpoint, meta), choices: [], usage: usage(end) };
}

function chunkHead(endpoint: Endpoint, meta: ResponseMeta) {
  return { id: meta.id, object: endpoint === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: meta.created, model: meta.model };
}

import type { TokenLogprob } from '../../engine/logits-processor.js';
import type { SamplingParams } from '../../engine/sampling.js';
import type { FinishReason, GenerationEnd } from '../../engine/streamer.js';
import type { ChatMessage, ChatTemplateOptions, ToolSpec } from '../../engine/tokenizer.js';
import type { ChatRequest, CompletionRequest } from './schemas.js';
import type { ToolCall, ToolChoice } from './tools.js';

/**
 * The translation layer: OpenAI requests to llmkit's native request, and generation events back to
 * OpenAI's response and chunk objects. Pure functions; the transport (JSON, SSE, WebSocket) is elsewhere.
 */

export type Endpoint = 'chat' | 'completion';

/** What the output must be (`response_format`), when not free text. */
export type OutputFormat = { type: 'json_object' } | { type: 'json_schema'; schema: unknown; strict: boolean };

/** What the server generates for one request, whatever API shape it came in. */
export interface NativeRequest {
  endpoint: Endpoint;
  /** `name` or `name@version`. */
  model: string;
  input: { messages: ChatMessage[]; template?: ChatTemplateOptions } | { text: string } | { ids: number[] };
  /** Undefined: whatever is left of the context. */
  maxTokens?: number;
  sampling: Partial<SamplingParams>;
  stop: string[];
  ignoreEos: boolean;
  stream: boolean;
  includeUsage: boolean;
  /** Completions of the prompt (`n`). */
  n: number;
  /** Alternatives per token when logprobs were asked for (0: the token's own only); undefined: none. */
  logprobs?: number;
  format?: OutputFormat;
  tools?: { specs: ToolSpec[]; choice: ToolChoice };
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
  const rf = r.response_format;
  const format: OutputFormat | undefined =
    rf?.type === 'json_object'
      ? { type: 'json_object' }
      : rf?.type === 'json_schema'
        ? { type: 'json_schema', schema: rf.json_schema.schema ?? {}, strict: rf.json_schema.strict ?? false }
        : undefined;
  return {
    model: r.model,
    sampling,
    stop: r.stop == null ? [] : typeof r.stop === 'string' ? [r.stop] : r.stop,
    ignoreEos: r.ignore_eos ?? false,
    stream: r.stream ?? false,
    includeUsage: r.stream_options?.include_usage ?? false,
    n: r.n ?? 1,
    format,
  };
}

export function fromChatRequest(r: ChatRequest): NativeRequest {
  const messages = r.messages.map((m): ChatMessage => {
    const content = typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text).join('');
    const message: ChatMessage = { role: m.role === 'developer' ? 'system' : m.role, content };
    if (m.name !== undefined) message.name = m.name;
    if (m.tool_call_id !== undefined) message.tool_call_id = m.tool_call_id;
    // Templates write arguments with `tojson`: give them the object, not OpenAI's JSON string.
    if (m.tool_calls) message.tool_calls = m.tool_calls.map((c) => ({ ...c, function: { name: c.function.name, arguments: parseArguments(c.function.arguments) } }));
    return message;
  });
  const choice: ToolChoice = r.tool_choice === undefined ? 'auto' : typeof r.tool_choice === 'string' ? r.tool_choice : { name: r.tool_choice.function.name };
  return {
    ...common(r),
    endpoint: 'chat',
    input: { messages, template: { enableThinking: r.chat_template_kwargs?.enable_thinking } },
    maxTokens: r.max_completion_tokens ?? r.max_tokens ?? undefined,
    logprobs: r.logprobs ? (r.top_logprobs ?? 0) : undefined,
    tools: r.tools ? { specs: r.tools.map((t) => ({ type: 'function', function: t.function })), choice } : undefined,
  };
}

export function fromCompletionRequest(r: CompletionRequest): NativeRequest {
  const input = typeof r.prompt === 'string' ? { text: r.prompt } : typeof r.prompt[0] === 'string' ? { text: r.prompt[0] } : { ids: r.prompt as number[] };
  return { ...common(r), endpoint: 'completion', input, maxTokens: r.max_tokens ?? COMPLETION_DEFAULT_MAX_TOKENS, logprobs: r.logprobs ?? undefined };
}

function parseArguments(args: string): unknown {
  try {
    return JSON.parse(args);
  } catch {
    return args;
  }
}

/** Identifies one response; every chunk of a stream repeats it. */
export interface ResponseMeta {
  id: string;
  model: string;
  /** Unix seconds. */
  created: number;
  /** A token as text and as bytes (logprobs name tokens). */
  tokenText: (id: number) => string;
  tokenBytes: (id: number) => number[];
}

/** One finished choice. */
export interface ChoiceResult {
  text: string;
  end: GenerationEnd;
  logprobs?: TokenLogprob[];
  /** Parsed tool calls; `text` is then what the reply said besides them. */
  toolCalls?: ToolCall[];
}

export type OpenAiFinishReason = 'stop' | 'length' | 'content_filter' | 'tool_calls';

export function finishReason(reason: FinishReason, toolCalls = false): OpenAiFinishReason {
  if (toolCalls) return 'tool_calls';
  return reason === 'length' || reason === 'content_filter' ? reason : 'stop';
}

export function usage(ends: readonly GenerationEnd[]) {
  const prompt = ends[0].promptTokens;
  const completion = ends.reduce((n, e) => n + e.completionTokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** Chat's logprobs object: per token its text, bytes, logprob and alternatives. */
function chatLogprobs(meta: ResponseMeta, logprobs: readonly TokenLogprob[] | undefined) {
  if (!logprobs) return null;
  const entry = (id: number, logprob: number) => {
    const token = meta.tokenText(id);
    return { token, logprob, bytes: meta.tokenBytes(id) };
  };
  return { content: logprobs.map((l) => ({ ...entry(l.id, l.logprob), top_logprobs: l.top.map((t) => entry(t.id, t.logprob)) })), refusal: null };
}

/** Legacy completions' logprobs: parallel lists, alternatives as {token: logprob}; offsets count from `offset`. */
function completionLogprobs(meta: ResponseMeta, logprobs: readonly TokenLogprob[] | undefined, offset = 0) {
  if (!logprobs) return null;
  const tokens = logprobs.map((l) => meta.tokenText(l.id));
  const textOffset: number[] = [];
  let at = offset;
  for (const t of tokens) {
    textOffset.push(at);
    at += t.length;
  }
  return {
    tokens,
    token_logprobs: logprobs.map((l) => l.logprob),
    top_logprobs: logprobs.map((l) => Object.fromEntries(l.top.map((t) => [meta.tokenText(t.id), t.logprob]))),
    text_offset: textOffset,
  };
}

export function chatCompletion(meta: ResponseMeta, choices: readonly ChoiceResult[]) {
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: choices.map((c, index) => ({
      index,
      message: { role: 'assistant', content: c.toolCalls?.length && !c.text ? null : c.text, refusal: null, ...(c.toolCalls?.length ? { tool_calls: c.toolCalls } : {}) },
      logprobs: chatLogprobs(meta, c.logprobs),
      finish_reason: finishReason(c.end.reason, (c.toolCalls?.length ?? 0) > 0),
    })),
    usage: usage(choices.map((c) => c.end)),
  };
}

export function completion(meta: ResponseMeta, choices: readonly ChoiceResult[]) {
  return {
    id: meta.id,
    object: 'text_completion',
    created: meta.created,
    model: meta.model,
    choices: choices.map((c, index) => ({ index, text: c.text, logprobs: completionLogprobs(meta, c.logprobs), finish_reason: finishReason(c.end.reason) })),
    usage: usage(choices.map((c) => c.end)),
  };
}

/** What one streamed chunk carries for one choice. */
export interface ChunkPiece {
  index: number;
  text?: string;
  role?: boolean;
  finish?: FinishReason;
  logprobs?: TokenLogprob[];
  /** Completions' text_offset of this piece's first token. */
  offset?: number;
  /** Tool calls, sent whole (one delta each) once the reply is complete. */
  toolCalls?: ToolCall[];
}

/**
 * One streamed chunk. Chat streams open with the assistant role and close with an empty delta that
 * carries the finish reason; with `include_usage`, every chunk has `usage: null` and a last chunk
 * with no choices carries the totals.
 */
export function chunk(endpoint: Endpoint, meta: ResponseMeta, piece: ChunkPiece, includeUsage: boolean) {
  const finish = piece.finish ? finishReason(piece.finish, (piece.toolCalls?.length ?? 0) > 0) : null;
  const toolCalls = piece.finish ? undefined : piece.toolCalls?.map((c, index) => ({ index, ...c }));
  const choice =
    endpoint === 'chat'
      ? {
          index: piece.index,
          delta: toolCalls ? { tool_calls: toolCalls } : piece.finish ? {} : { ...(piece.role ? { role: 'assistant' } : {}), content: piece.text ?? '' },
          logprobs: chatLogprobs(meta, piece.logprobs),
          finish_reason: finish,
        }
      : { index: piece.index, text: piece.text ?? '', logprobs: completionLogprobs(meta, piece.logprobs, piece.offset), finish_reason: finish };
  return { ...chunkHead(endpoint, meta), choices: [choice], ...(includeUsage ? { usage: null } : {}) };
}

export function usageChunk(endpoint: Endpoint, meta: ResponseMeta, ends: readonly GenerationEnd[]) {
  return { ...chunkHead(endpoint, meta), choices: [], usage: usage(ends) };
}

function chunkHead(endpoint: Endpoint, meta: ResponseMeta) {
  return { id: meta.id, object: endpoint === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: meta.created, model: meta.model };
}

import { randomBytes } from 'node:crypto';
import type { Lane } from '../engine/engine-contract.js';
import type { ApiKey } from './access/auth.js';
import { requestFeatures, type Feature } from './access/features.js';
import type { ToolParsing } from './choice-output.js';
import type { ContentFilter } from './content-filter.js';
import { GrammarError, type GrammarSpec } from './grammar/grammar-spec.js';
import { ModelGrammars, type GrammarConstraint } from './grammar/model-grammars.js';
import { readVocabulary, tokenBytes } from './grammar/vocabulary.js';
import type { ModelRegistry, ServedModel } from './model-registry.js';
import { invalidParam } from './openai/errors.js';
import { ChatRequestSchema, CompletionRequestSchema, parseRequest, type ChatRequest, type CompletionRequest } from './openai/schemas.js';
import { toolCallGrammar, toolFormat, type ToolChoice } from './openai/tools.js';
import { fromChatRequest, fromCompletionRequest, type Endpoint, type NativeRequest, type ResponseMeta } from './openai/translate.js';
import type { ResponseCache } from './response-cache.js';

/** A request's tools: how calls are parsed, and whether one is forced. */
export type RequestTools = ToolParsing & { choice: ToolChoice };

/**
 * A request that passed every check that needs no quota: validated, routed, tokenized, fitted to the
 * context, its grammar compiled. Everything later steps read comes from here, never from the raw body.
 * It holds grammar constraints (a worker thread's matchers): `dispose()` once, whatever happens next.
 */
export interface PreparedRequest {
  endpoint: Endpoint;
  /** The body as validated (OpenAI's shape). */
  request: ChatRequest | CompletionRequest;
  /** What to generate (llmkit's shape). */
  native: NativeRequest;
  /** `stream: true`, or a transport that always streams (WebSocket). */
  stream: boolean;
  served: ServedModel;
  tools?: RequestTools;
  promptIds: number[];
  /** What quotas check and the cache looks at. */
  features: Feature[];
  /** `batch` for a line of a batch job: behind interactive requests in the engine. */
  lane: Lane;
  /** One per choice when the output is constrained (response_format, a forced tool call); else empty. */
  constraints: (GrammarConstraint | undefined)[];
  /** Set when the cache is on and the answer is deterministic and text only. */
  cacheKey?: string;
  meta: ResponseMeta;
  dispose(): void;
}

/** How a request came: the transport (WebSocket, forced streaming) or a batch job's line. */
export interface PrepareOptions {
  forceStream?: boolean;
  websocket?: boolean;
  lane?: Lane;
}

export interface RequestPreparerDeps {
  models: ModelRegistry;
  /** Prompts longer than this use the `long_context` feature. */
  longContextTokens: number;
  filter?: ContentFilter;
  cache?: ResponseCache;
}

/**
 * Turns a body into a PreparedRequest, or refuses it with a 400/404 (as an ApiError) before anything is
 * held. Keeps what is worth keeping between requests: each model's compiled grammars and token bytes.
 */
export class RequestPreparer {
  /** Each model's compiled grammars (structured outputs, forced tool calls). */
  private readonly grammars = new Map<ServedModel, ModelGrammars>();
  /** Each model's token → bytes table (logprobs), read on first use. */
  private readonly bytes = new Map<ServedModel, (id: number) => number[]>();

  constructor(private readonly deps: RequestPreparerDeps) {}

  async prepare(endpoint: Endpoint, body: unknown, key: ApiKey, opts: PrepareOptions = {}): Promise<PreparedRequest> {
    const { request, native } = parseBody(endpoint, body);
    const stream = native.stream || opts.forceStream === true;
    const served = this.deps.models.resolve(native.model);
    const tools = toolParsing(served, native);
    const promptIds = this.promptIds(served, native);
    checkContext(served, native, promptIds.length);
    const lane = opts.lane ?? 'interactive';
    const features = requestFeatures(native, { stream, websocket: opts.websocket === true, batch: lane === 'batch', promptTokens: promptIds.length, longContextTokens: this.deps.longContextTokens });
    // Answers with several choices, logprobs or tool calls are never cached (see ResponseCache).
    const cacheKey = this.deps.cache?.keyFor({ key, served, request, native, promptIds, features });
    const meta: ResponseMeta = {
      id: `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`,
      model: served.id,
      created: Math.floor(Date.now() / 1000),
      tokenText: (id) => served.engine.tokenizer.tokenText(id),
      tokenBytes: (id) => this.tokenBytes(served)(id),
    };
    // Last: from here on something is held.
    const constraints = await this.constraints(served, native, tools);
    const dispose = () => {
      for (const c of constraints.splice(0)) c?.dispose();
    };
    return { endpoint, request, native, stream, served, tools, promptIds, features, lane, constraints, cacheKey, meta, dispose };
  }

  private tokenBytes(served: ServedModel): (id: number) => number[] {
    let bytes = this.bytes.get(served);
    if (!bytes) this.bytes.set(served, (bytes = tokenBytes(readVocabulary(served.engine.model.dir))));
    return bytes;
  }

  /** One grammar constraint per choice, from response_format or a forced tool call; compiled once per schema. */
  private async constraints(served: ServedModel, native: NativeRequest, tools: RequestTools | undefined): Promise<(GrammarConstraint | undefined)[]> {
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
}

function parseBody(endpoint: Endpoint, body: unknown): { request: ChatRequest | CompletionRequest; native: NativeRequest } {
  if (endpoint === 'chat') {
    const request = parseRequest(ChatRequestSchema, body);
    return { request, native: fromChatRequest(request) };
  }
  const request = parseRequest(CompletionRequestSchema, body);
  return { request, native: fromCompletionRequest(request) };
}

/** How this request's tool calls are parsed; a 400 when the model's template takes no tools. */
function toolParsing(served: ServedModel, native: NativeRequest): RequestTools | undefined {
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

/** Never truncate: a prompt that does not fit, or does not leave room for max_tokens, is a 400. */
function checkContext(served: ServedModel, native: NativeRequest, prompt: number): void {
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

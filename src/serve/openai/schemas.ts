import { z } from 'zod';
import { ApiError, invalidParam } from './errors.js';

/**
 * The request bodies llmkit accepts, field by field as in OpenAI's API, plus extensions that vLLM and
 * llama.cpp also take: `top_k`, `repetition_penalty`, `ignore_eos`, and `response_format` on completions.
 * Fields OpenAI has but llmkit cannot honour (echo, suffix, best_of > 1, image parts) are refused by
 * name rather than ignored.
 */

/** Most completions of one prompt (`n`); they decode side by side in one batch. */
export const MAX_CHOICES = 8;
/** Most alternatives per token (`top_logprobs`, completions' `logprobs`), as OpenAI allows. */
export const MAX_TOP_LOGPROBS = 20;
const sampling = {
  model: z.string().min(1),
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(0).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  repetition_penalty: z.number().gt(0).nullish(),
  seed: z.number().int().nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.strictObject({ include_usage: z.boolean().optional() }).nullish(),
  ignore_eos: z.boolean().nullish(),
  user: z.string().nullish(),
  n: z.number().int().min(1).max(MAX_CHOICES).nullish(),
  response_format: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('text') }),
      z.strictObject({ type: z.literal('json_object') }),
      z.strictObject({
        type: z.literal('json_schema'),
        json_schema: z.strictObject({
          name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'names are 1-64 letters, digits, _ or -' }),
          description: z.string().optional(),
          schema: z.record(z.string(), z.unknown()).optional(),
          strict: z.boolean().nullish(),
        }),
      }),
    ])
    .nullish(),
};

const functionName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'function names are 1-64 letters, digits, _ or -' });

const tool = z.strictObject({
  type: z.literal('function', { error: "only tools of type 'function' are supported" }),
  function: z.strictObject({
    name: functionName,
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }),
});

const toolCall = z.strictObject({
  id: z.string(),
  type: z.literal('function'),
  // parsed_arguments: what the SDKs' parse() adds to a call it returns; accepted and ignored, as OpenAI does.
  function: z.strictObject({ name: z.string(), arguments: z.string(), parsed_arguments: z.unknown().optional() }),
});

const textPart = z.strictObject({ type: z.literal('text', { error: "only content parts of type 'text' are supported" }), text: z.string() });

const message = z
  .strictObject({
    role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
    content: z.union([z.string(), z.array(textPart)]).nullish(),
    name: z.string().optional(),
    /** An assistant turn's calls, sent back with the conversation. */
    tool_calls: z.array(toolCall).optional(),
    /** A tool turn: which call this is the result of. */
    tool_call_id: z.string().optional(),
    refusal: z.string().nullish(),
    // What the SDKs add to a message they return (parse()'s result, web-search citations, audio replies), sent back
    // as the next turn's history: accepted and ignored, as OpenAI does.
    parsed: z.unknown().optional(),
    annotations: z.array(z.unknown()).nullish(),
    audio: z.unknown().nullish(),
    function_call: z.unknown().nullish(),
  })
  .refine((m) => m.role !== 'tool' || m.tool_call_id !== undefined, { error: "messages with role 'tool' need a tool_call_id", path: ['tool_call_id'] });

export const ChatRequestSchema = z
  .strictObject({
    ...sampling,
    messages: z.array(message).min(1),
    max_completion_tokens: z.number().int().min(1).nullish(),
    logprobs: z.boolean().nullish(),
    top_logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
    tools: z.array(tool).min(1).max(128).optional(),
    tool_choice: z.union([z.enum(['none', 'auto', 'required']), z.strictObject({ type: z.literal('function'), function: z.strictObject({ name: functionName }) })]).optional(),
    parallel_tool_calls: z.boolean().nullish(),
    /** vLLM's extension: variables for the chat template; llmkit knows Qwen3's enable_thinking (default false). */
    chat_template_kwargs: z.strictObject({ enable_thinking: z.boolean().optional() }).nullish(),
  })
  .refine((r) => r.tools?.length || r.tool_choice === undefined || r.tool_choice === 'none' || r.tool_choice === 'auto', {
    error: "'tool_choice' is only allowed when 'tools' are specified.",
    path: ['tool_choice'],
  });

export const CompletionRequestSchema = z.strictObject({
  ...sampling,
  /** Text, a list of one text, or token ids. */
  prompt: z.union([z.string(), z.array(z.string()).length(1, { error: 'only one prompt per request is supported' }), z.array(z.number().int().min(0)).min(1)]),
  echo: z.literal(false, { error: 'echo is not supported' }).nullish(),
  logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
  best_of: z.literal(1, { error: 'only best_of = 1 is supported' }).nullish(),
  suffix: z.null({ error: 'suffix is not supported' }).optional(),
});

export type ChatRequest = z.infer<typeof ChatRequestSchema>;
export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;

/** Validates a body, turning the first problem into a 400 that names the parameter, as OpenAI does. */
export function parseRequest<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'the request body must be a JSON object', 'invalid_request');
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (issue.code === 'unrecognized_keys') {
    const key = [...issue.path.map(String), issue.keys[0]].join('.');
    throw invalidParam(key, `Unrecognized request argument supplied: ${key}`, 'unknown_parameter');
  }
  const param = paramName(issue.path);
  const missing = issue.code === 'invalid_type' && (body as Record<string, unknown>)[String(issue.path[0])] === undefined && issue.path.length === 1;
  if (missing) throw invalidParam(param, `Missing required parameter: '${param}'`, 'missing_required_parameter');
  throw invalidParam(param, `Invalid '${param}': ${issue.message}`, issue.code === 'invalid_type' ? 'invalid_type' : 'invalid_value');
}

/** ['messages', 0, 'role'] → "messages[0].role", OpenAI's way of naming nested parameters. */
function paramName(path: readonly PropertyKey[]): string {
  return path.reduce<string>((name, part) => (typeof part === 'number' ? `${name}[${part}]` : name ? `${name}.${String(part)}` : String(part)), '');
}

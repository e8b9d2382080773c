import { randomBytes } from 'node:crypto';
import type { ToolSpec } from '../../engine/tokenizer.js';
import type { GrammarSpec } from '../grammar/grammar-spec.js';

/**
 * Tool calling through the model's own chat template. Templates that take `tools` tell the model how
 * to call one; the two formats parsed here are the ones of the families llmkit serves:
 * - `hermes` (Qwen 2.5/3, Hermes): `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`, one block per call;
 * - `llama3_json` (Llama 3.1/3.2/3.3): the whole reply is `{"name": ..., "parameters": {...}}`, after an optional `<|python_tag|>`.
 */
export type ToolFormat = 'hermes' | 'llama3_json';

export type ToolChoice = 'none' | 'auto' | 'required' | { name: string };

/** A parsed call, OpenAI-shaped: arguments are a JSON string. */
export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** The call format a chat template teaches, or undefined when it takes no tools (or none we can parse). */
export function toolFormat(template: string): ToolFormat | undefined {
  if (!/\btools\b/.test(template)) return undefined;
  if (template.includes('<tool_call>')) return 'hermes';
  if (template.includes('<|python_tag|>') || template.includes('"parameters"')) return 'llama3_json';
  return undefined;
}

const HERMES_OPEN = '<tool_call>';
const HERMES_BLOCK = /<tool_call>\s*([\s\S]*?)\s*<\/tool_call>/g;
const PYTHON_TAG = '<|python_tag|>';

/** The model's reply split into text and calls to the declared functions; text that is not a well-formed call stays text. */
export function parseToolCalls(format: ToolFormat, text: string, tools: readonly ToolSpec[]): { content: string; calls: ToolCall[] } {
  const known = new Set(tools.map((t) => t.function.name));
  const call = (json: string, argsKey: string): ToolCall | undefined => {
    const value = parseJson(json);
    if (!isObject(value) || typeof value.name !== 'string' || !known.has(value.name)) return undefined;
    const args = value[argsKey] ?? value.arguments ?? {};
    if (!isObject(args)) return undefined;
    return { id: `call_${randomBytes(12).toString('hex')}`, type: 'function', function: { name: value.name, arguments: JSON.stringify(args) } };
  };
  if (format === 'hermes') {
    const calls: ToolCall[] = [];
    const content = text.replace(HERMES_BLOCK, (block, json: string) => {
      const c = call(json, 'arguments');
      if (!c) return block;
      calls.push(c);
      return '';
    });
    return { content: calls.length ? content.trim() : text, calls };
  }
  const body = text.trim().replace(PYTHON_TAG, '').trim();
  // Llama 3.1 may put several calls in one reply, separated by ';'.
  const parts = body.startsWith('{') ? body.split(/;\s*(?=\{)/) : [];
  const calls = parts.map((p) => call(p, 'parameters'));
  return calls.length && calls.every((c) => c !== undefined) ? { content: '', calls: calls as ToolCall[] } : { content: text, calls: [] };
}

/**
 * How much of a streamed reply can be sent as text before the end: everything before the point where a
 * tool call may begin. Hermes calls begin at `<tool_call>` (text before it streams); a Llama 3.1 call is
 * the whole reply, so a reply that starts like one is held to the end.
 */
export function streamableLength(format: ToolFormat, text: string): number {
  if (format === 'llama3_json') {
    const head = text.trimStart();
    if (!head) return 0;
    return head.startsWith('{') || PYTHON_TAG.startsWith(head.slice(0, PYTHON_TAG.length)) ? 0 : text.length;
  }
  const open = text.indexOf(HERMES_OPEN);
  if (open >= 0) return open;
  // A partial marker at the very end may still become one.
  for (let k = Math.min(HERMES_OPEN.length - 1, text.length); k > 0; k--) if (HERMES_OPEN.startsWith(text.slice(-k))) return text.length - k;
  return text.length;
}

/**
 * The grammar for `tool_choice` `required` or a named function: the reply must be exactly one call to one
 * of the functions, its arguments valid against that function's parameter schema.
 */
export function toolCallGrammar(format: ToolFormat, tools: readonly ToolSpec[], choice: 'required' | { name: string }): GrammarSpec {
  const chosen = typeof choice === 'object' ? tools.filter((t) => t.function.name === choice.name) : tools;
  const argsKey = format === 'hermes' ? 'arguments' : 'parameters';
  const schemas = chosen.map((t) => ({
    type: 'object',
    properties: { name: { const: t.function.name }, [argsKey]: t.function.parameters ?? { type: 'object' } },
    required: ['name', argsKey],
    additionalProperties: false,
  }));
  const schema = schemas.length === 1 ? schemas[0] : { anyOf: schemas };
  if (format === 'llama3_json') return { kind: 'json_schema', schema, strict: true };
  return { kind: 'structural_tag', format: { type: 'tag', begin: `${HERMES_OPEN}\n`, content: { type: 'json_schema', json_schema: schema }, end: '\n</tool_call>' } };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

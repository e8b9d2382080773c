import { createReadStream, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { LlmkitError, UsageError } from '../../shared/errors.js';

/**
 * The JSONL shapes llmkit trains on, detected per file from its first example:
 * - messages: `{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}]}` (OpenAI chat)
 * - alpaca: `{"instruction": "...", "input": "...", "output": "..."}` (input optional)
 * - prompt-completion: `{"prompt": "...", "completion": "..."}`
 * - text: `{"text": "..."}` (the loss is on all of it)
 */
export type DataFormat = 'messages' | 'alpaca' | 'prompt-completion' | 'text';

export interface DataFile {
  path: string;
  format: DataFormat;
  examples: number;
}

const ROLES = ['system', 'user', 'assistant'];

/**
 * Reads every line of a JSONL file and checks it against the file's format, so a bad line stops the
 * command before any training starts; the error names the file, the line and what is wrong.
 */
export async function validateDataFile(path: string, flag = '--data'): Promise<DataFile> {
  if (!existsSync(path)) throw new UsageError(`${flag} ${path} does not exist`, 'pass a JSONL file');
  let format: DataFormat | undefined;
  let examples = 0;
  let number = 0;
  const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) {
    number += 1;
    if (!line.trim()) continue;
    const at = `${path}:${number}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw bad(at, `line is not valid JSON (${(e as Error).message})`);
    }
    if (row === null || typeof row !== 'object' || Array.isArray(row)) throw bad(at, 'line must be a JSON object');
    const obj = row as Record<string, unknown>;
    const shape = detectFormat(obj);
    if (!format) {
      if (!shape) throw bad(at, `unknown example shape (keys: ${Object.keys(obj).join(', ') || 'none'})`, SHAPES_HINT);
      format = shape;
    } else if (shape !== format) {
      throw bad(at, `expected a ${format} example like the file's first one${shape ? `, got ${shape}` : ''}`, 'use one format per file');
    }
    const problem = checkExample(obj, format);
    if (problem) throw bad(at, problem);
    examples += 1;
  }
  if (!format) throw new LlmkitError(`${flag} ${path} has no examples`, 'add one JSON object per line');
  return { path, format, examples };
}

const SHAPES_HINT = 'each line needs "messages", "instruction"+"output", "prompt"+"completion" or "text"';

function bad(at: string, message: string, hint = 'fix the line or remove it'): LlmkitError {
  return new LlmkitError(`${at}: ${message}`, hint);
}

export function detectFormat(row: Record<string, unknown>): DataFormat | undefined {
  if ('messages' in row) return 'messages';
  if ('instruction' in row || 'output' in row) return 'alpaca';
  if ('prompt' in row || 'completion' in row) return 'prompt-completion';
  if ('text' in row) return 'text';
  return undefined;
}

/** What is wrong with one example of a known format, or undefined. */
function checkExample(row: Record<string, unknown>, format: DataFormat): string | undefined {
  const text = (key: string, optional = false) => {
    const v = row[key];
    if (v === undefined && optional) return undefined;
    if (typeof v !== 'string') return `"${key}" must be a string`;
    if (!optional && !v.trim()) return `"${key}" is empty`;
    return undefined;
  };
  switch (format) {
    case 'messages': {
      const messages = row.messages;
      if (!Array.isArray(messages) || messages.length === 0) return '"messages" must be a non-empty list';
      for (const [i, m] of messages.entries()) {
        if (m === null || typeof m !== 'object') return `messages[${i}] must be an object with "role" and "content"`;
        const { role, content } = m as Record<string, unknown>;
        if (typeof role !== 'string' || !ROLES.includes(role)) return `messages[${i}].role must be system, user or assistant (got ${JSON.stringify(role)})`;
        if (typeof content !== 'string') return `messages[${i}].content must be a string`;
      }
      const answers = messages.filter((m) => (m as { role: string }).role === 'assistant');
      if (answers.length === 0) return 'no assistant message: a conversation needs an answer to learn from';
      if (answers.some((m) => !(m as { content: string }).content.trim())) return 'an assistant message is empty';
      return undefined;
    }
    case 'alpaca':
      return text('instruction') ?? text('input', true) ?? text('output');
    case 'prompt-completion':
      return typeof row.prompt !== 'string' ? '"prompt" must be a string' : text('completion');
    case 'text':
      return text('text');
  }
}

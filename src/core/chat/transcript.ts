import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../../shared/atomic.js';
import { LlmkitError } from '../../shared/errors.js';
import type { ChatSession } from './session.js';

/** A saved conversation (`/save FILE`, `/load FILE`): enough to continue it, with the same settings. */
export const TranscriptSchema = z.object({
  format: z.literal('llmkit-chat-transcript'),
  version: z.literal(1),
  /** The model it was held with (informational: loading does not switch models). */
  model: z.string(),
  savedAt: z.string(),
  system: z.string().nullable(),
  settings: z.object({
    temperature: z.number().min(0),
    topP: z.number().gt(0).max(1),
    maxTokens: z.number().int().positive(),
    seed: z.number().int().nonnegative().nullable(),
  }),
  messages: z.array(z.object({ role: z.enum(['user', 'assistant']), content: z.string() })),
});

export type Transcript = z.infer<typeof TranscriptSchema>;

export function toTranscript(session: ChatSession): Transcript {
  return {
    format: 'llmkit-chat-transcript',
    version: 1,
    model: session.backend.info.model,
    savedAt: new Date().toISOString(),
    system: session.system,
    settings: { ...session.settings },
    messages: session.history.map(({ role, content }) => ({ role: role as 'user' | 'assistant', content })),
  };
}

/** Writes the conversation as JSON (atomically); returns the absolute path. */
export async function saveTranscript(session: ChatSession, file: string): Promise<string> {
  const path = resolve(file);
  await writeFileAtomic(path, JSON.stringify(toTranscript(session), null, 2) + '\n');
  return path;
}

/** Reads a transcript, naming the file and the first problem when it is not one. */
export async function readTranscript(file: string): Promise<Transcript> {
  let text: string;
  try {
    text = await readFile(resolve(file), 'utf8');
  } catch (e) {
    throw new LlmkitError(`cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'pass a file written by /save');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new LlmkitError(`${file} is not JSON`, 'pass a file written by /save');
  }
  const parsed = TranscriptSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LlmkitError(`${file}: ${issue.path.join('.') || 'top level'}: ${issue.message}`, 'pass a file written by /save');
  }
  return parsed.data;
}

/** Replaces the session's conversation, system prompt and settings with the transcript's. */
export function restoreTranscript(session: ChatSession, transcript: Transcript): void {
  session.clear();
  session.system = transcript.system;
  session.settings = { ...transcript.settings };
  session.history = transcript.messages.map((m) => ({ ...m }));
}

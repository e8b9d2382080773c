import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { describeTurn } from './format.js';
import type { ChatSession } from './session.js';
import { parseInput, runSlashCommand } from './slash-commands.js';

export interface PlainChatOptions {
  session: ChatSession;
  input: Readable;
  /** Replies (text as it streams, or one JSON object per reply with `json`). */
  output: Writable;
  /** Notices, waits and errors, so that `output` holds only replies. */
  messages: Writable;
  json: boolean;
  /** Stops the current reply and the loop (Ctrl-C). */
  stopSignal: AbortSignal;
}

/**
 * The chat for scripts and pipes: one message per input line (a trailing backslash joins the next
 * line), each reply printed as it streams and ended with a newline. Slash commands work as in the
 * terminal UI. Returns the exit code: 0 when every line got its answer, 1 when one failed, 130 when stopped.
 */
export async function runPlainChat({ session, input, output, messages, json, stopSignal }: PlainChatOptions): Promise<number> {
  // terminal: false keeps a terminal's own Ctrl-C (SIGINT, which stops the chat) instead of readline's line editing.
  const lines = createInterface({ input, crlfDelay: Infinity, terminal: false });
  const stop = () => lines.close();
  stopSignal.addEventListener('abort', stop, { once: true });
  let exitCode = 0;
  let pending = '';
  try {
    for await (const line of lines) {
      if (line.endsWith('\\')) {
        pending += line.slice(0, -1) + '\n';
        continue;
      }
      const entry = parseInput(pending + line);
      pending = '';
      if (entry.kind === 'empty') continue;
      if (entry.kind === 'invalid') {
        messages.write(`error: ${entry.message}\n`);
        exitCode = 1;
        continue;
      }
      if (entry.kind === 'command') {
        const outcome = await runSlashCommand(session, entry.command);
        if (outcome.kind === 'exit') break;
        if (outcome.kind === 'error') {
          messages.write(`error: ${outcome.error.message}${outcome.error.hint ? `; ${outcome.error.hint}` : ''}\n`);
          exitCode = 1;
        } else messages.write(outcome.text + '\n');
        continue;
      }
      const result = await session.send(
        entry.text,
        {
          text: (piece) => {
            if (!json) output.write(piece);
          },
          waiting: (seconds, error) => messages.write(`${error.message}: waiting ${seconds} s (Retry-After) before trying again\n`),
        },
        stopSignal,
      );
      if ('error' in result) {
        const { kind, message, hint } = result.error;
        if (json) output.write(JSON.stringify({ error: { kind, message, hint: hint ?? null } }) + '\n');
        messages.write(`error: ${message}${hint ? `; ${hint}` : ''}\n`);
        exitCode = 1;
      } else if (json) output.write(JSON.stringify({ reply: result.reply, stats: result.stats }) + '\n');
      else {
        output.write('\n');
        messages.write(`(${describeTurn(result.stats, session.backend.info.contextWindow)})\n`);
      }
      if (stopSignal.aborted) break;
    }
  } finally {
    stopSignal.removeEventListener('abort', stop);
    lines.close();
  }
  return stopSignal.aborted ? 130 : exitCode;
}

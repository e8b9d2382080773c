import { Box, Text, render, useApp, useInput, useStdout, type Key } from 'ink';
import { useCallback, useRef, useState } from 'react';
import type { ChatBackendError } from '../core/chat/backend.js';
import type { ChatSession } from '../core/chat/session.js';
import { parseInput, runSlashCommand, type SlashCommand } from '../core/chat/slash-commands.js';
import { applyKey, emptyEditor, type EditorState } from './line-editor.js';
import { InputLine } from './input-line.js';
import { MessageList, type LogEntry } from './message-list.js';
import { printable } from './printable.js';
import { StatusLine } from './status-line.js';
import { visibleTail } from './visible-tail.js';

/** The keys, for /help (the slash commands come from core). */
export const KEY_HELP = [
  'Enter sends; a trailing \\ before Enter, Alt+Enter or Ctrl+J starts a new line (Shift+Enter too, in terminals with the kitty keyboard protocol)',
  'Up/Down recall earlier inputs; Ctrl-A/E go to the start/end, Ctrl-U/K/W delete to the start/end/the word before',
  'Esc or Ctrl-C cancels a reply; Ctrl-C on an empty prompt, Ctrl-D or /exit quits',
].join('\n');

const GENERATING = 'generating · Esc cancels';
/** Rows of the live area besides the reply and the prompt: the status line, and one spare for the wrap of the last. */
const LIVE_AREA_ROWS = 2;

/** A log entry before it gets its id (Omit applied to each kind of entry). */
type WithoutId<E> = E extends unknown ? Omit<E, 'id'> : never;
type NewEntry = WithoutId<LogEntry>;

/**
 * The terminal chat: finished turns above (scrollback), the reply streaming live below them, the
 * prompt and a status line. Keys are read through refs so that several keys arriving in one chunk
 * (a paste, a fast typist, tmux) apply in order rather than to a stale render.
 */
export function ChatApp({ session }: { session: ChatSession }) {
  const { exit } = useApp();
  const { stdout } = useStdout();
  const editor = useRef<EditorState>(emptyEditor());
  const [editorView, setEditorView] = useState(editor.current);
  const [entries, setEntries] = useState<LogEntry[]>(() => [{ id: 0, kind: 'notice', text: welcome(session) }]);
  const nextId = useRef(1);
  const [streaming, setStreaming] = useState<string | null>(null);
  const [activity, setActivity] = useState<string | null>(null);
  /** The reply in flight, if any: aborting it cancels the reply. */
  const turn = useRef<AbortController | null>(null);
  /** A reply or a command is running: Enter waits. */
  const busy = useRef(false);

  const log = (...added: NewEntry[]) => setEntries((old) => [...old, ...added.map((e) => ({ ...e, id: nextId.current++ }) as LogEntry)]);
  const setEditor = (state: EditorState) => {
    editor.current = state;
    setEditorView(state);
  };
  const quit = () => {
    turn.current?.abort();
    exit();
  };
  const logError = (error: { message: string; hint?: string }) => log({ kind: 'error', text: error.message, hint: error.hint });

  async function runCommand(command: SlashCommand): Promise<void> {
    if (command.name === 'exit') return quit();
    busy.current = true;
    setActivity(`/${command.name} …`);
    const outcome = await runSlashCommand(session, command);
    busy.current = false;
    setActivity(null);
    if (outcome.kind === 'exit') quit();
    else if (outcome.kind === 'error') logError(outcome.error);
    else if (outcome.kind === 'cleared') log({ kind: 'notice', text: `— ${outcome.text} —` });
    else {
      const restored: NewEntry[] = (outcome.restored ?? []).map((m) => (m.role === 'user' ? { kind: 'user', text: m.content } : { kind: 'assistant', text: m.content }));
      log(...restored, { kind: 'notice', text: command.name === 'help' ? `${outcome.text}\n${KEY_HELP}` : outcome.text });
    }
  }

  async function sendMessage(text: string): Promise<void> {
    log({ kind: 'user', text });
    const controller = new AbortController();
    turn.current = controller;
    busy.current = true;
    setStreaming('');
    setActivity(GENERATING);
    const result = await session.send(
      text,
      {
        text: (piece) => {
          setActivity(GENERATING);
          setStreaming((shown) => (shown ?? '') + piece);
        },
        waiting: (seconds: number, error: ChatBackendError) => {
          log({ kind: 'notice', text: `${error.message}: waiting ${seconds} s (Retry-After), then trying again` });
          setActivity(`rate limited: waiting ${seconds} s · Esc cancels`);
          setStreaming('');
        },
      },
      controller.signal,
    );
    turn.current = null;
    busy.current = false;
    setStreaming(null);
    setActivity(null);
    if ('error' in result) return logError(result.error);
    const { finishReason } = result.stats;
    const note =
      finishReason === 'cancelled' ? 'cancelled' : finishReason === 'length' ? `stopped at ${session.settings.maxTokens} tokens: /max raises the limit` : result.reply ? undefined : 'empty reply';
    log({ kind: 'assistant', text: result.reply, note });
  }

  function submit(line: string): void {
    const input = parseInput(line);
    if (input.kind === 'invalid') log({ kind: 'error', text: input.message });
    else if (input.kind === 'command') void runCommand(input.command);
    else if (input.kind === 'message') void sendMessage(input.text);
  }

  const onKey = useRef<(input: string, key: Key) => void>(undefined);
  onKey.current = (input, key) => {
    if (key.ctrl && input === 'c') {
      if (turn.current) turn.current.abort();
      else if (editor.current.text) setEditor(emptyEditor(editor.current.history));
      else quit();
      return;
    }
    if (key.escape) return turn.current?.abort();
    if (key.ctrl && input === 'd' && !editor.current.text) return quit();
    const result = applyKey(editor.current, input, key, !busy.current);
    setEditor(result.state);
    if (result.submitted !== undefined) submit(result.submitted);
  };
  useInput(useCallback((input: string, key: Key) => onKey.current?.(input, key), []));

  return (
    <Box flexDirection="column">
      <MessageList entries={entries} />
      {streaming !== null ? (
        <Text>
          {stdout.rows ? visibleTail(printable(streaming), Math.max(1, stdout.rows - LIVE_AREA_ROWS - editorView.text.split('\n').length), stdout.columns) : printable(streaming)}
          <Text dimColor>▍</Text>
        </Text>
      ) : null}
      <InputLine text={editorView.text} cursor={editorView.cursor} busy={streaming !== null} />
      <StatusLine info={session.backend.info} settings={session.settings} stats={session.lastStats} activity={activity} />
    </Box>
  );
}

function welcome(session: ChatSession): string {
  const { model, device } = session.backend.info;
  return `llmkit chat · ${model} on ${device} · /help lists commands and keys · Esc cancels a reply · Ctrl-D quits`;
}

/** Bracketed paste: the terminal marks pasted text, so its line breaks do not send it line by line. */
const BRACKETED_PASTE = { on: '\x1b[?2004h', off: '\x1b[?2004l' };

/** Runs the chat in the terminal until the user quits. */
export async function runChatApp(session: ChatSession): Promise<void> {
  process.stdout.write(BRACKETED_PASTE.on);
  try {
    // Ctrl-C cancels a reply or clears the prompt before it quits, so the app reads it as a key.
    const app = render(<ChatApp session={session} />, { exitOnCtrlC: false, kittyKeyboard: { mode: 'auto' } });
    await app.waitUntilExit();
  } finally {
    process.stdout.write(BRACKETED_PASTE.off);
  }
}

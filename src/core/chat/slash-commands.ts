import { LlmkitError } from '../../shared/errors.js';
import type { ChatMessage } from './backend.js';
import { describeTotals, describeTurn } from './format.js';
import type { ChatSession } from './session.js';
import { readTranscript, restoreTranscript, saveTranscript } from './transcript.js';

export type SlashCommand =
  | { name: 'help' }
  | { name: 'clear' }
  /** text: undefined shows the prompt, null removes it. */
  | { name: 'system'; text?: string | null }
  | { name: 'temp'; value?: number }
  | { name: 'top_p'; value?: number }
  | { name: 'max'; value?: number }
  /** value: undefined shows the seed, null draws a fresh one per reply. */
  | { name: 'seed'; value?: number | null }
  | { name: 'model'; model?: string }
  | { name: 'save'; file: string }
  | { name: 'load'; file: string }
  | { name: 'stats' }
  | { name: 'exit' };

/** A line typed at the prompt. `//text` sends `/text` as a message. */
export type ChatInput = { kind: 'empty' } | { kind: 'message'; text: string } | { kind: 'command'; command: SlashCommand } | { kind: 'invalid'; message: string };

/** The /help text: usage and what it does, one command a line. */
export const SLASH_COMMANDS: [string, string][] = [
  ['/help', 'this list'],
  ['/clear', 'forget the conversation (the system prompt stays)'],
  ['/system [TEXT|off]', 'show, set or remove the system prompt'],
  ['/temp [X]', 'sampling temperature (0 = always the most likely token)'],
  ['/top_p [X]', 'nucleus sampling: keep the likeliest tokens up to this probability mass (0 < X ≤ 1)'],
  ['/max [N]', 'new tokens per reply, at most'],
  ['/seed [N|off]', 'fixed seed for reproducible replies, or off'],
  ['/model [NAME]', 'show the models, or switch to NAME'],
  ['/save FILE', 'write the conversation as a JSON transcript'],
  ['/load FILE', 'continue a saved conversation (its system prompt and settings too)'],
  ['/stats', 'numbers for the last reply and the conversation'],
  ['/exit', 'quit (also Ctrl-D, or Ctrl-C on an empty prompt)'],
];

const NAMES = new Set(SLASH_COMMANDS.map(([usage]) => usage.split(' ')[0].slice(1)));

/** Parses one submitted line: a message, a slash command, or why the command is wrong. Pure. */
export function parseInput(line: string): ChatInput {
  if (!line.trim()) return { kind: 'empty' };
  if (line.startsWith('//')) return { kind: 'message', text: line.slice(1) };
  if (!line.startsWith('/')) return { kind: 'message', text: line };
  const match = /^\/(\S+)\s*([\s\S]*)$/.exec(line.trimEnd())!;
  const [, name, arg] = match;
  if (!NAMES.has(name)) return { kind: 'invalid', message: `unknown command /${name}: /help lists them (start a message with // to send a literal /)` };
  try {
    return { kind: 'command', command: parseCommand(name, arg) };
  } catch (e) {
    return { kind: 'invalid', message: (e as Error).message };
  }
}

function parseCommand(name: string, arg: string): SlashCommand {
  switch (name) {
    case 'system':
      return { name, text: arg === '' ? undefined : arg === 'off' ? null : arg };
    case 'temp':
      return { name, value: arg === '' ? undefined : number(arg, '/temp', 0, 2) };
    case 'top_p':
      return { name, value: arg === '' ? undefined : number(arg, '/top_p', 0, 1, true) };
    case 'max':
      return { name, value: arg === '' ? undefined : integer(arg, '/max', 1) };
    case 'seed':
      return { name, value: arg === '' ? undefined : arg === 'off' ? null : integer(arg, '/seed', 0) };
    case 'model':
      return { name, model: arg || undefined };
    case 'save':
    case 'load':
      if (!arg) throw new Error(`/${name} needs a file: /${name} chat.json`);
      return { name, file: arg };
    default:
      if (arg) throw new Error(`/${name} takes no argument (got ${arg})`);
      return { name } as SlashCommand;
  }
}

function number(text: string, command: string, min: number, max: number, minExclusive = false): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n > max || (minExclusive ? n <= min : n < min)) {
    throw new Error(`${command} takes a number ${minExclusive ? '>' : '≥'} ${min} and ≤ ${max} (got ${text})`);
  }
  return n;
}

function integer(text: string, command: string, min: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || !Number.isSafeInteger(n)) throw new Error(`${command} takes an integer ≥ ${min}${command === '/seed' ? ' or off' : ''} (got ${text})`);
  return n;
}

export type CommandOutcome =
  | {
      kind: 'notice';
      text: string;
      /** The conversation to show again after /load. */
      restored?: ChatMessage[];
    }
  | { kind: 'cleared'; text: string }
  | { kind: 'error'; error: LlmkitError }
  | { kind: 'exit' };

/** Carries out a slash command on the session; the UI shows the outcome. */
export async function runSlashCommand(session: ChatSession, command: SlashCommand): Promise<CommandOutcome> {
  try {
    return await run(session, command);
  } catch (e) {
    return { kind: 'error', error: e instanceof LlmkitError ? e : new LlmkitError((e as Error).message) };
  }
}

async function run(session: ChatSession, command: SlashCommand): Promise<CommandOutcome> {
  const notice = (text: string): CommandOutcome => ({ kind: 'notice', text });
  const { settings } = session;
  switch (command.name) {
    case 'help':
      return notice(helpText());
    case 'clear':
      session.clear();
      return { kind: 'cleared', text: 'conversation cleared' + (session.system === null ? '' : ' (the system prompt stays)') };
    case 'system':
      if (command.text === undefined) return notice(session.system === null ? 'no system prompt (set one with /system TEXT)' : `system prompt: ${session.system}`);
      session.system = command.text;
      return notice(command.text === null ? 'system prompt removed' : `system prompt set (applies from the next message): ${command.text}`);
    case 'temp':
      if (command.value !== undefined) settings.temperature = command.value;
      return notice(`temperature ${settings.temperature}`);
    case 'top_p':
      if (command.value !== undefined) settings.topP = command.value;
      return notice(`top_p ${settings.topP}`);
    case 'max':
      if (command.value !== undefined) settings.maxTokens = command.value;
      return notice(`at most ${settings.maxTokens} new tokens per reply`);
    case 'seed':
      if (command.value !== undefined) settings.seed = command.value;
      return notice(settings.seed === null ? 'seed off (a fresh one per reply)' : `seed ${settings.seed}`);
    case 'model': {
      if (command.model === undefined) {
        const models = await session.backend.listModels();
        return notice(`model ${session.backend.info.model}; available: ${models.join(', ')}`);
      }
      const info = await session.backend.useModel(command.model);
      return notice(`now talking to ${info.model} (the conversation stays)`);
    }
    case 'save':
      return notice(`saved ${session.history.length} messages to ${await saveTranscript(session, command.file)}`);
    case 'load': {
      const transcript = await readTranscript(command.file);
      restoreTranscript(session, transcript);
      const saved = transcript.model === session.backend.info.model ? '' : ` (saved with ${transcript.model})`;
      return { kind: 'notice', text: `loaded ${transcript.messages.length} messages from ${command.file}${saved}`, restored: session.history };
    }
    case 'stats':
      return notice([`last reply: ${session.lastStats ? describeTurn(session.lastStats, session.backend.info.contextWindow) : 'none yet'}`, `conversation: ${describeTotals(session)}`].join('\n'));
    case 'exit':
      return { kind: 'exit' };
  }
}

/** The commands and what they do; the terminal UI adds its keys. */
function helpText(): string {
  const width = Math.max(...SLASH_COMMANDS.map(([usage]) => usage.length));
  return SLASH_COMMANDS.map(([usage, what]) => `${usage.padEnd(width)}  ${what}`).join('\n');
}

import type { Streamer } from '../../engine/streamer.js';
import { LlmkitError } from '../../shared/errors.js';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** The knobs a chat turns per reply (slash commands change them between replies). */
export interface ChatSettings {
  temperature: number;
  topP: number;
  /** New tokens per reply, at most. */
  maxTokens: number;
  /** Same seed, same conversation → same reply; null draws a fresh one per reply. */
  seed: number | null;
}

export const DEFAULT_CHAT_SETTINGS: ChatSettings = { temperature: 0.7, topP: 0.95, maxTokens: 512, seed: null };

/** What the status line says about where replies come from. */
export interface BackendInfo {
  model: string;
  /** `cpu`, `webgpu`, … for the in-process engine; the server's host for a remote one. */
  device: string;
  /** Tokens the model can attend to (prompt + reply); null when a server does not say. */
  contextWindow: number | null;
}

export interface ReplyRequest {
  /** The whole conversation, system prompt first, ending with the user's turn. */
  messages: ChatMessage[];
  settings: ChatSettings;
  /** Aborting it stops the reply; the streamer then ends with reason `cancelled`. */
  signal: AbortSignal;
}

/**
 * Where a chat gets its replies: the in-process engine or any OpenAI-compatible server. Text goes to
 * the engine's Streamer (put, then end exactly once); failures end it with reason `error` and a
 * ChatBackendError, so a UI has one place to hear how a reply ended.
 */
export interface ChatBackend {
  readonly info: BackendInfo;
  reply(request: ReplyRequest, streamer: Streamer): Promise<void>;
  /** Models this backend can switch to (`/model`). */
  listModels(): Promise<string[]>;
  /** Switches to another model; returns the new info. */
  useModel(name: string): Promise<BackendInfo>;
  close(): Promise<void>;
}

/** How a reply failed, so that the chat can say what to do and recover (retry, /clear, fix a flag). */
export type ChatErrorKind = 'unreachable' | 'unauthorized' | 'rate_limited' | 'context_too_long' | 'bad_request' | 'server';

export class ChatBackendError extends LlmkitError {
  constructor(
    readonly kind: ChatErrorKind,
    message: string,
    hint?: string,
    /** Seconds the server asked to wait before retrying (429 Retry-After). */
    readonly retryAfterS?: number,
  ) {
    super(message, hint);
    this.name = 'ChatBackendError';
  }
}

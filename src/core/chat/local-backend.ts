import { basename } from 'node:path';
import { LocalEngine } from '../../engine/local-engine.js';
import { EngineRejection } from '../../engine/engine-contract.js';
import type { Device } from '../../engine/devices.js';
import type { Streamer } from '../../engine/streamer.js';
import { ChatBackendError, type BackendInfo, type ChatBackend, type ReplyRequest } from './backend.js';

export interface LocalBackendOptions {
  device?: Device;
  /** Intra-op threads for ONNX Runtime (default: one per physical core). */
  threads?: number;
  /** Speculative decoding: `ngram` or a draft model folder (serve --draft). */
  draft?: string;
}

/** Replies from the engine in this process: the model's chat template, then the engine's own streamer. */
export class LocalChatBackend implements ChatBackend {
  info: BackendInfo;

  private constructor(
    private engine: LocalEngine,
    private readonly opts: LocalBackendOptions,
  ) {
    this.info = describe(engine);
  }

  /** Opens an exported model folder (`llmkit export` / `llmkit quantize` output). */
  static async open(dir: string, opts: LocalBackendOptions = {}): Promise<LocalChatBackend> {
    return new LocalChatBackend(await openEngine(dir, opts), opts);
  }

  async reply({ messages, settings, signal }: ReplyRequest, streamer: Streamer): Promise<void> {
    const fail = (error: ChatBackendError) => streamer.end({ reason: 'error', promptTokens: NaN, completionTokens: 0, interTokenMs: [], error });
    let promptIds: number[];
    try {
      promptIds = this.engine.tokenizer.encodeChat(messages);
    } catch (e) {
      return fail(
        new ChatBackendError(
          'bad_request',
          `${this.info.model}'s chat template failed (${(e as Error).message.split('\n')[0]})`,
          'export the model with a tokenizer_config.json that has a chat_template',
        ),
      );
    }
    // A long conversation gets a shorter reply rather than none, until the prompt itself no longer fits.
    const room = this.engine.contextLength - promptIds.length;
    if (room <= 0) {
      return fail(
        new ChatBackendError(
          'context_too_long',
          `the conversation (${promptIds.length} tokens) no longer fits ${this.info.model}'s context of ${this.engine.contextLength} tokens`,
          '/clear starts a new conversation',
        ),
      );
    }
    await new Promise<void>((resolve) => {
      const ended: Streamer = {
        put: (text) => streamer.put(text),
        end: (end) => {
          streamer.end(end.reason === 'error' ? { ...end, error: new ChatBackendError('server', `generation failed: ${end.error?.message ?? 'unknown error'}`) } : end);
          resolve();
        },
      };
      try {
        this.engine.generate(
          { promptIds, maxTokens: Math.min(settings.maxTokens, room), sampling: { temperature: settings.temperature, topP: settings.topP, seed: settings.seed ?? undefined }, signal },
          ended,
        );
      } catch (e) {
        fail(
          e instanceof EngineRejection && e.code === 'context_length_exceeded'
            ? new ChatBackendError('context_too_long', e.message, '/clear starts a new conversation')
            : new ChatBackendError('server', (e as Error).message),
        );
        resolve();
      }
    });
  }

  async listModels(): Promise<string[]> {
    return [this.engine.model.dir];
  }

  /** Loads another exported model folder in place of this one. */
  async useModel(dir: string): Promise<BackendInfo> {
    const next = await openEngine(dir, this.opts);
    await this.engine.close();
    this.engine = next;
    this.info = describe(next);
    return this.info;
  }

  async close(): Promise<void> {
    await this.engine.close();
  }
}

/** One conversation needs one batch row, and no more KV-cache room than one context. */
function openEngine(dir: string, opts: LocalBackendOptions): Promise<LocalEngine> {
  return LocalEngine.open(dir, { ...opts, maxBatch: 1 });
}

function describe(engine: LocalEngine): BackendInfo {
  return { model: basename(engine.model.dir), device: engine.decoder.provider, contextWindow: engine.contextLength };
}

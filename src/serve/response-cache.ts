import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { FinishReason, Streamer } from '../engine/streamer.js';
import type { ApiKey } from './access/auth.js';
import type { ServedModel } from './model-registry.js';
import type { Feature } from './access/features.js';
import type { RedisValueStore } from './access/redis-store.js';
import type { ChatRequest, CompletionRequest } from './openai/schemas.js';
import type { NativeRequest } from './openai/translate.js';
import type { ServerMetrics } from './server-metrics.js';

/** A finished answer as it was streamed: replayed piece by piece, so a cached stream still streams. */
const CachedAnswerSchema = z.object({
  pieces: z.array(z.string()),
  reason: z.enum(['stop', 'length']),
  promptTokens: z.number().int(),
  completionTokens: z.number().int(),
});
export type CachedAnswer = Omit<z.infer<typeof CachedAnswerSchema>, 'reason'> & { reason: FinishReason };

/** Request fields that change how an answer is framed, never what it says. */
const FRAMING_FIELDS = new Set(['stream', 'stream_options', 'user', 'model']);

/** Features whose answers hold more than text (several choices, log-probabilities, tool calls): never cached. */
const UNCACHEABLE: readonly Feature[] = ['n', 'logprobs', 'tools'];

/** Only answers that ended on their own are worth replaying. */
const CACHEABLE_ENDS: readonly FinishReason[] = ['stop', 'length'];

/**
 * The response cache (`--cache`) for deterministic requests (greedy, or sampled with a fixed seed): in
 * memory with a bound on entries (least recently used goes first), or in Redis with a TTL when the server
 * has `--redis`, shared by replicas. The key hashes everything that can change the output: the model id
 * (name@version) and its manifest, the endpoint, the prompt's token ids (system prompt and every turn,
 * after the chat template), and every request field but those that only frame the answer. Keys are scoped
 * to the caller's account (or key, when it has none): two accounts never share an entry.
 */
export class ResponseCache {
  private readonly memory = new Map<string, CachedAnswer>();

  constructor(private readonly opts: { maxEntries: number; redis?: RedisValueStore; metrics: ServerMetrics }) {}

  /** The request's cache key, or undefined when its output is not deterministic. */
  keyFor(r: { key: ApiKey; served: ServedModel; request: ChatRequest | CompletionRequest; native: NativeRequest; promptIds: readonly number[]; features: readonly Feature[] }): string | undefined {
    const { sampling } = r.native;
    if ((sampling.temperature ?? 0) !== 0 && sampling.seed === undefined) return undefined;
    if (r.features.some((f) => UNCACHEABLE.includes(f))) return undefined;
    const fields = Object.entries(r.request).filter(([k]) => !FRAMING_FIELDS.has(k));
    const hash = createHash('sha256');
    hash.update(
      JSON.stringify([
        r.key.account ? `account:${r.key.account}` : `key:${r.key.name}`,
        r.served.id,
        r.served.adapterPath ?? null,
        r.served.engine.model.manifest,
        r.native.endpoint,
        r.promptIds,
        fields.sort(),
      ]),
    );
    return hash.digest('hex');
  }

  /** The answer cached under `key`, counted as a hit or miss of `model` (the served model's id). */
  async get(key: string, model: string): Promise<CachedAnswer | undefined> {
    let answer: CachedAnswer | undefined;
    if (this.opts.redis) {
      // Redis away, or an entry this version cannot read (another version wrote it): a miss, and the answer is generated.
      const text = await this.opts.redis.get(key).catch(() => null);
      answer = text ? readEntry(text) : undefined;
    } else {
      answer = this.memory.get(key);
      if (answer) {
        this.memory.delete(key);
        this.memory.set(key, answer);
      }
    }
    this.opts.metrics.cacheRequests.inc({ model, result: answer ? 'hit' : 'miss' });
    return answer;
  }

  async set(key: string, answer: CachedAnswer): Promise<void> {
    if (!CACHEABLE_ENDS.includes(answer.reason)) return;
    if (this.opts.redis) return void (await this.opts.redis.set(key, JSON.stringify(answer)).catch(() => {}));
    this.memory.delete(key);
    this.memory.set(key, answer);
    while (this.memory.size > this.opts.maxEntries) this.memory.delete(this.memory.keys().next().value!);
  }
}

function readEntry(text: string): CachedAnswer | undefined {
  try {
    const parsed = CachedAnswerSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** A streamer that keeps every piece it passes on (what a cache entry replays). */
export function recordPieces(streamer: Streamer): { streamer: Streamer; pieces: string[] } {
  const pieces: string[] = [];
  return {
    pieces,
    streamer: {
      put: (text) => {
        pieces.push(text);
        streamer.put(text);
      },
      end: (end) => streamer.end(end),
    },
  };
}

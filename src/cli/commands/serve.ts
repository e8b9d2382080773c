import { Command } from 'commander';
import {
  DEFAULT_CACHE_ENTRIES,
  DEFAULT_CACHE_TTL_S,
  DEFAULT_PREFIX_CACHE_MB,
  FILTER_MODES,
  parseDevice,
  REDIS_DOWN_POLICIES,
  SERVE_ENGINES,
  type FilterMode,
  type RedisDownPolicy,
} from '../../core/choices.js';
import { UsageError } from '../../shared/errors.js';
import { action } from '../action.js';
import { parseInteger } from '../flags.js';
import type { GlobalFlags } from '../output.js';

interface ServeFlags {
  host: string;
  port: string;
  device: string;
  threads?: string;
  maxBatch: string;
  maxQueue: string;
  maxTokensTotal?: string;
  prefillChunk: string;
  prefixCacheMb: string;
  apiKey?: string[];
  apiKeysFile?: string;
  rpm?: string;
  tpm?: string;
  quotaFile?: string;
  redis?: string;
  redisDown: string;
  cache?: boolean;
  cacheEntries: string;
  cacheTtl: string;
  blocklist?: string;
  filterMode: string;
  engine: string;
  tritonUrl?: string;
  tritonModel?: string;
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('serve exported models behind an OpenAI-compatible API (REST, server-sent events, WebSocket at /v1/ws and /v1/chat/completions)')
    .argument('<models...>', 'model folders from `llmkit export`/`quantize`: PATH, NAME=PATH or NAME@VERSION=PATH')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0 picks a free one)', '8080')
    .option('--device <device>', 'auto (cuda, then webgpu, then cpu), cpu, cuda or webgpu', 'auto')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: one per physical core)')
    .option('--max-batch <n>', 'requests decoded together', '16')
    .option('--max-queue <n>', 'requests waiting for a batch row; past it, 503 with Retry-After', '256')
    .option('--max-tokens-total <n>', 'prompt + max_tokens summed over running requests (default: max-batch × context)')
    .option('--prefill-chunk <n>', 'prompt tokens prefilled between two decode steps (keeps running streams steady)', '256')
    .option('--prefix-cache-mb <n>', "memory for finished requests' keys/values, reused by prompts that start with the same tokens (0: off)", String(DEFAULT_PREFIX_CACHE_MB))
    .option('--api-key <key...>', `API keys clients must send as "Authorization: Bearer <key>" (also $LLMKIT_API_KEYS, comma-separated)`)
    .option('--api-keys-file <file>', 'one key a line: KEY [name=NAME] [rpm=N] [tpm=N]')
    .option('--rpm <n>', 'requests per minute per API key (default: unlimited)')
    .option('--tpm <n>', 'prompt + generated tokens per minute per API key (default: unlimited)')
    .option('--quota-file <file>', 'YAML or JSON: accounts, their keys, and rpm/tpm/tpd limits per account, key, model and feature (docs/serve.md)')
    .option('--redis <url>', 'redis://HOST:PORT: quota counters and the response cache shared by every replica, kept across restarts')
    .option('--redis-down <policy>', `while Redis is unreachable: open (serve without quotas) or closed (refuse with 503)`, 'open')
    .option('--cache', 'answer repeated deterministic requests (temperature 0 or a seed) from a cache: in Redis with --redis, else in memory')
    .option('--cache-entries <n>', 'answers the in-memory cache keeps (least recently used go first)', String(DEFAULT_CACHE_ENTRIES))
    .option('--cache-ttl <seconds>', 'how long a cached answer lives in Redis', String(DEFAULT_CACHE_TTL_S))
    .option('--blocklist <file>', 'content filter: one blocked word or phrase a line, matched ignoring case')
    .option('--filter-mode <mode>', `what the blocklist does: ${FILTER_MODES.join(' or ')}`, 'reject')
    .option('--engine <engine>', `where generation runs: onnx (in this process) or triton (a Triton server; docs/deploy.md)`, 'onnx')
    .option('--triton-url <url>', "with --engine triton: Triton's HTTP endpoint, e.g. http://127.0.0.1:8000")
    .option('--triton-model <name>', 'with --engine triton: the generate model (default: <model name>-generate)')
    .action(
      action(async (opts: ServeFlags, flags: GlobalFlags, [models]) => {
        const { startServer } = await import('../../core/serve.js');
        if (!(REDIS_DOWN_POLICIES as readonly string[]).includes(opts.redisDown)) throw new UsageError(`--redis-down must be one of ${REDIS_DOWN_POLICIES.join(', ')} (got ${opts.redisDown})`);
        if (!(FILTER_MODES as readonly string[]).includes(opts.filterMode)) throw new UsageError(`--filter-mode must be one of ${FILTER_MODES.join(', ')} (got ${opts.filterMode})`);
        if (!(SERVE_ENGINES as readonly string[]).includes(opts.engine)) throw new UsageError(`--engine must be one of ${SERVE_ENGINES.join(', ')} (got ${opts.engine})`);
        const server = await startServer({
          models: models as unknown as string[],
          host: opts.host,
          port: parseInteger(opts.port, '--port', 0),
          device: parseDevice(opts.device),
          threads: opts.threads ? parseInteger(opts.threads, '--threads') : undefined,
          maxBatch: parseInteger(opts.maxBatch, '--max-batch'),
          maxQueue: parseInteger(opts.maxQueue, '--max-queue', 0),
          maxTokensTotal: opts.maxTokensTotal ? parseInteger(opts.maxTokensTotal, '--max-tokens-total') : undefined,
          prefillChunk: parseInteger(opts.prefillChunk, '--prefill-chunk'),
          prefixCacheMb: parseInteger(opts.prefixCacheMb, '--prefix-cache-mb', 0),
          apiKeys: opts.apiKey,
          apiKeysFile: opts.apiKeysFile,
          requestsPerMinute: opts.rpm ? parseInteger(opts.rpm, '--rpm') : undefined,
          tokensPerMinute: opts.tpm ? parseInteger(opts.tpm, '--tpm') : undefined,
          quotaFile: opts.quotaFile,
          redis: opts.redis,
          redisDown: opts.redisDown as RedisDownPolicy,
          cache: opts.cache === true,
          cacheEntries: parseInteger(opts.cacheEntries, '--cache-entries'),
          cacheTtlSeconds: parseInteger(opts.cacheTtl, '--cache-ttl'),
          blocklist: opts.blocklist,
          filterMode: opts.filterMode as FilterMode,
          log: (line) => process.stderr.write(line + '\n'),
          engine: opts.engine as (typeof SERVE_ENGINES)[number],
          tritonUrl: opts.tritonUrl,
          tritonModel: opts.tritonModel,
        });
        const models_ = server.models.map((m) => ({
          id: m.id,
          path: m.engine.model.dir,
          device: m.engine.device,
          skipped: m.engine.deviceNotes,
        }));
        if (flags.json) process.stdout.write(JSON.stringify({ event: 'listening', url: server.url, authenticated: server.authenticated, models: models_ }) + '\n');
        else {
          for (const m of models_) process.stdout.write(`model ${m.id} on ${m.device}${m.skipped.length ? ` (${m.skipped.join('; ')})` : ''}: ${m.path}\n`);
          process.stdout.write(`serving at ${server.url}/v1${server.authenticated ? ' (API key required)' : ''}; SIGTERM or Ctrl-C drains and stops\n`);
        }
        await untilStopped(server.drain);
      }),
    );
}

/** The first SIGTERM/SIGINT drains (new requests get 503, running ones finish); a second one exits at once. */
function untilStopped(drain: () => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    const stop = (signal: string) => {
      process.off('SIGTERM', stop).off('SIGINT', stop);
      process.once('SIGTERM', () => process.exit(143)).once('SIGINT', () => process.exit(130));
      process.stderr.write(`${signal}: draining (finishing requests in flight; again to quit at once)\n`);
      drain().then(resolve, reject);
    };
    process.on('SIGTERM', stop).on('SIGINT', stop);
  });
}

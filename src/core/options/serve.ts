import { DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_TTL_S, DEFAULT_PREFIX_CACHE_MB, DEVICES, FILTER_MODES, REDIS_DOWN_POLICIES, SERVE_ENGINES, IMPORTABLE_MODELS } from '../choices.js';
import { defineCommand } from './define.js';
import { booleanField, enumField, intField, textField, textsField } from './fields.js';

export const SERVE = defineCommand({
  name: 'serve',
  description: 'serve exported models behind an OpenAI-compatible API (REST, server-sent events, WebSocket at /v1/ws and /v1/chat/completions)',
  options: {
    models: {
      field: textsField(),
      positional: true,
      required: true,
      variadic: true,
      help: `model folders from \`llmkit export\`/\`quantize\` (or ${IMPORTABLE_MODELS}, exported once): PATH, NAME=PATH or NAME@VERSION=PATH`,
    },
    host: { field: textField(), value: '<host>', default: '127.0.0.1', help: 'address to listen on' },
    port: { field: intField(0), value: '<n>', default: 8080, help: 'port to listen on (0 picks a free one)' },
    device: { field: enumField(DEVICES), value: '<device>', default: 'auto', help: 'auto (cuda, then webgpu, then cpu), cpu, cuda or webgpu' },
    threads: { field: intField(1), value: '<n>', help: 'ONNX Runtime intra-op threads', defaultHelp: 'one per physical core' },
    maxBatch: { field: intField(1), value: '<n>', default: 16, help: 'requests decoded together' },
    maxQueue: { field: intField(0), value: '<n>', default: 256, help: 'requests waiting for a batch row; past it, 503 with Retry-After' },
    maxTokensTotal: { field: intField(1), value: '<n>', help: 'prompt + max_tokens summed over running requests', defaultHelp: 'max-batch × context' },
    prefillChunk: { field: intField(1), value: '<n>', default: 256, help: 'prompt tokens prefilled between two decode steps (keeps running streams steady)' },
    prefixCacheMb: {
      field: intField(0),
      value: '<n>',
      default: DEFAULT_PREFIX_CACHE_MB,
      help: "memory for finished requests' keys/values, reused by prompts that start with the same tokens (0: off)",
    },
    draft: {
      field: textField(),
      value: '<ngram|dir>',
      help: 'speculative decoding: ngram (prompt lookup: drafts copied from earlier in the context) or a draft model folder with the same tokenizer (`llmkit distill --for-draft`); greedy output is unchanged',
    },
    apiKey: {
      field: textsField(),
      value: '<key>',
      variadic: true,
      help: 'API keys clients must send as "Authorization: Bearer <key>" (also $LLMKIT_API_KEYS, comma-separated)',
    },
    apiKeysFile: { field: textField(), value: '<file>', help: 'one key a line: KEY [name=NAME] [rpm=N] [tpm=N]' },
    rpm: { field: intField(1), value: '<n>', help: 'requests per minute per API key', defaultHelp: 'unlimited' },
    tpm: { field: intField(1), value: '<n>', help: 'prompt + generated tokens per minute per API key', defaultHelp: 'unlimited' },
    quotaFile: { field: textField(), value: '<file>', help: 'YAML or JSON: accounts, their keys, and rpm/tpm/tpd limits per account, key, model and feature (docs/serve.md)' },
    redis: { field: textField(), value: '<url>', help: 'redis://HOST:PORT: quota counters and the response cache shared by every replica, kept across restarts' },
    redisDown: { field: enumField(REDIS_DOWN_POLICIES), value: '<policy>', default: 'open', help: 'while Redis is unreachable: open (serve without quotas) or closed (refuse with 503)' },
    cache: {
      field: booleanField(),
      default: false,
      help: 'answer repeated deterministic requests (temperature 0 or a seed) from a cache: in Redis with --redis, else in memory',
    },
    cacheEntries: { field: intField(1), value: '<n>', default: DEFAULT_CACHE_ENTRIES, help: 'answers the in-memory cache keeps (least recently used go first)' },
    cacheTtl: { field: intField(1), value: '<seconds>', default: DEFAULT_CACHE_TTL_S, help: 'how long a cached answer lives in Redis' },
    blocklist: { field: textField(), value: '<file>', help: 'content filter: one blocked word or phrase a line, matched ignoring case' },
    filterMode: { field: enumField(FILTER_MODES), value: '<mode>', default: 'reject', help: `what the blocklist does: ${FILTER_MODES.join(' or ')}` },
    engine: { field: enumField(SERVE_ENGINES), value: '<engine>', default: 'onnx', help: 'where generation runs: onnx (in this process) or triton (a Triton server; docs/deploy.md)' },
    tritonUrl: { field: textField(), value: '<url>', help: "with --engine triton: Triton's HTTP endpoint, e.g. http://127.0.0.1:8000" },
    dataDir: { field: textField(), value: '<dir>', help: 'where /v1/files and /v1/batches keep files and batch jobs (kept across restarts)', defaultHelp: '$LLMKIT_HOME/serve-data' },
    batchFileMb: { field: intField(1), value: '<n>', default: 200, help: 'largest file /v1/files takes, in MB' },
    force: { field: booleanField(), default: false, help: 'start even when the memory estimate says the models cannot fit (llmkit inspect MODEL --for serve)' },
    ui: { field: booleanField(), default: true, help: 'the web page at / (chat playground and dashboard)', negate: 'do not serve the web page at /' },
    tritonModel: { field: textField(), value: '<name>', help: 'with --engine triton: the generate model', defaultHelp: '<model name>-generate' },
  },
  // The names core's startServer takes; the checks across flags (Triton, quota files) are its own.
  finish: ({ apiKey, rpm, tpm, cacheTtl, ...rest }) => ({ ...rest, apiKeys: apiKey, requestsPerMinute: rpm, tokensPerMinute: tpm, cacheTtlSeconds: cacheTtl }),
});

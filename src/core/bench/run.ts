import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { LocalEngine } from '../../engine/local-engine.js';
import type { Device } from '../../engine/devices.js';
import type { DecodePath } from '../../engine/local-engine.js';
import type { ChatMessage } from '../../engine/tokenizer.js';
import { TransformersJsBaseline, type SingleRun } from './baseline.js';
import { percentile, timedChatStream, type StreamTiming } from './client.js';
import { LlmkitError } from '../../shared/errors.js';
import { packageRoot } from '../../shared/paths.js';
import { writeFileAtomic } from '../../shared/atomic.js';
import { benchChart } from '../charts/reports.js';

/** The fixed prompt set: questions of very different lengths, so batches mix short and long prompts. */
export const BENCH_PROMPTS: string[] = [
  'What is the capital of Zarnovia?',
  'Write a short poem about the sea.',
  'Explain, step by step and in plain words, how a lighthouse keeper of the old days kept the lamp burning through a long winter night, what tools were needed, and what could go wrong.',
  'List three rivers.',
  'Summarise the following: the town sat at the mouth of a wide river; fishermen went out before dawn, the market opened at nine, and in the evening the bells of the old church rang across the water while the boats came home one by one.',
  'Hello!',
  'Describe a mountain village in spring, with its paths, its goats, its bakery and the people who meet at the fountain every morning to talk about the weather and the harvest.',
  'Why is the sky blue?',
];

export interface BenchOptions {
  /** Exported model folder. */
  model: string;
  /** Drive a server that already runs here instead of starting one. */
  url?: string;
  apiKey?: string;
  /** Concurrent streaming clients per level; 1 must be among them. */
  concurrency: number[];
  /** New tokens per request (EOS is ignored, so every request generates exactly this many). */
  maxTokens: number;
  /** Measured rounds (after one warm-up round); each client sends one request per round. */
  rounds: number;
  device: Device;
  threads?: number;
  /** Prints what the benchmark is doing. */
  onStage?: (text: string) => void;
  /** Also time transformers.js generate() on the same folder, on the engine's device. */
  baseline: boolean;
  /** The llmkit CLI script that starts the server: the running CLI passes its own (it may be a bundle); default bin/llmkit.js. */
  cli?: string;
  /** Also write the concurrency table as an SVG chart to this file. */
  chart?: string;
}

export interface SingleStream {
  completionTokens: number;
  tokensPerSecond: number;
  /** Tokens after the first over the time they took: decode alone, without the prompt. */
  decodeTokensPerSecond: number;
}

export interface LevelResult {
  concurrency: number;
  requests: number;
  completionTokens: number;
  seconds: number;
  tokensPerSecond: number;
  /** Aggregate tokens/s over concurrency 1's. */
  speedup: number;
  ttftMs: { p50: number; p95: number };
  interTokenMs: { p50: number; p95: number };
}

export interface BenchReport {
  model: string;
  device: string;
  /** The engine's decode path: the KV cache in place on the device with a CUDA graph per bucket, or the dynamic one. */
  decodePath: DecodePath;
  maxTokens: number;
  rounds: number;
  engine: SingleStream;
  baseline?: SingleStream & { name: string; engineDecodeRatio: number };
  levels: LevelResult[];
  /** 1 − server tokens/s at concurrency 1 ÷ bare engine tokens/s, same prompts. */
  serverOverhead: number;
}

const messagesFor = (i: number): ChatMessage[] => [{ role: 'user', content: BENCH_PROMPTS[i % BENCH_PROMPTS.length] }];

/**
 * The serving benchmark: the bare engine loop (no HTTP, in this process), transformers.js on the same
 * folder, and the server (its own process, as in production) driven by N concurrent streaming
 * clients. Everything is measured in rounds and every round visits every contender and every
 * concurrency level in turn, so that load from other processes, which comes and goes, falls on all
 * of them alike and the ratios stay fair. Round 0 warms everything up and is not counted.
 */
export async function runBench(opts: BenchOptions): Promise<BenchReport> {
  const say = opts.onStage ?? (() => {});
  // Prefix reuse off, here and in the server: the eight prompts repeat, and every request must pay its
  // prefill as transformers.js does (test/bench/reuse-100m.js measures reuse).
  const engine = await LocalEngine.open(opts.model, { device: opts.device, threads: opts.threads, prefixCacheMb: 0 });
  let baselineModel: TransformersJsBaseline | undefined;
  let server: { url: string; stop: () => Promise<void> } | undefined;
  try {
    baselineModel = opts.baseline ? await TransformersJsBaseline.load(opts.model, engine.decoder.provider) : undefined;
    server = opts.url ? undefined : await spawnServer(opts, Math.max(...opts.concurrency));
    const url = opts.url ?? server!.url;
    const request = (i: number, maxTokens = opts.maxTokens) => ({ model: 'bench', messages: messagesFor(i), max_tokens: maxTokens, ignore_eos: true });
    await timedChatStream(url, request(0, 4), opts.apiKey).catch((e) => {
      throw new LlmkitError(`the server at ${url} did not answer a chat request (${(e as Error).message})`, 'check that it serves the model as "bench", and --api-key');
    });

    const engineRuns: SingleRun[] = [];
    const baselineRuns: SingleRun[] = [];
    const levels = opts.concurrency.map((c) => ({ concurrency: c, timings: [] as StreamTiming[], ms: 0 }));
    for (let round = 0; round <= opts.rounds; round++) {
      say(round === 0 ? 'warm-up round' : `round ${round}/${opts.rounds}: bare engine${baselineModel ? ', transformers.js' : ''}, server at concurrency ${opts.concurrency.join(', ')}`);
      const counted = round > 0;
      const started = performance.now();
      const { end } = await engine.complete({ promptIds: engine.tokenizer.encodeChat(messagesFor(round)), maxTokens: opts.maxTokens, ignoreEos: true });
      if (counted) engineRuns.push({ completionTokens: end.completionTokens, totalMs: performance.now() - started, decodeMs: end.interTokenMs.reduce((a, b) => a + b, 0) });
      const baselineRun = await baselineModel?.run(messagesFor(round), opts.maxTokens);
      if (counted && baselineRun) baselineRuns.push(baselineRun);
      for (const level of levels) {
        // Each client sends one request; prompts are dealt round-robin, so a batch mixes lengths.
        const sent = performance.now();
        const timings = await Promise.all(Array.from({ length: level.concurrency }, (_, k) => timedChatStream(url, request(round * level.concurrency + k), opts.apiKey)));
        if (!counted) continue;
        level.ms += performance.now() - sent;
        level.timings.push(...timings);
      }
    }
    const engineStats = singleStream(engineRuns);
    const single = levels.find((l) => l.concurrency === 1)!;
    const singleTokensPerSecond = tokensOf(single.timings) / (single.ms / 1000);
    const baselineStats = baselineRuns.length ? singleStream(baselineRuns) : undefined;
    const report: BenchReport = {
      model: opts.model,
      device: engine.decoder.provider,
      decodePath: engine.decodePath,
      maxTokens: opts.maxTokens,
      rounds: opts.rounds,
      engine: engineStats,
      baseline: baselineStats && { name: 'transformers.js', ...baselineStats, engineDecodeRatio: engineStats.decodeTokensPerSecond / baselineStats.decodeTokensPerSecond },
      levels: levels.map((l) => levelResult(l.concurrency, l.timings, l.ms / 1000, singleTokensPerSecond)),
      serverOverhead: 1 - singleTokensPerSecond / engineStats.tokensPerSecond,
    };
    if (opts.chart) await writeFileAtomic(opts.chart, benchChart(report));
    return report;
  } finally {
    await server?.stop();
    await baselineModel?.dispose();
    await engine.close();
  }
}

function singleStream(runs: SingleRun[]): SingleStream {
  const tokens = runs.reduce((n, r) => n + r.completionTokens, 0);
  const totalMs = runs.reduce((n, r) => n + r.totalMs, 0);
  const decodeMs = runs.reduce((n, r) => n + r.decodeMs, 0);
  return { completionTokens: tokens, tokensPerSecond: (tokens / totalMs) * 1000, decodeTokensPerSecond: ((tokens - runs.length) / decodeMs) * 1000 };
}

const tokensOf = (timings: StreamTiming[]) => timings.reduce((n, t) => n + t.completionTokens, 0);

function levelResult(concurrency: number, timings: StreamTiming[], seconds: number, singleTokensPerSecond: number): LevelResult {
  const tokensPerSecond = tokensOf(timings) / seconds;
  const gaps = timings.flatMap((t) => t.gapsMs);
  const ttfts = timings.map((t) => t.ttftMs);
  return {
    concurrency,
    requests: timings.length,
    completionTokens: tokensOf(timings),
    seconds,
    tokensPerSecond,
    speedup: tokensPerSecond / singleTokensPerSecond,
    ttftMs: { p50: percentile(ttfts, 50), p95: percentile(ttfts, 95) },
    interTokenMs: { p50: percentile(gaps, 50), p95: percentile(gaps, 95) },
  };
}

/** Starts `llmkit serve` as its own process (ONNX Runtime runs on the server's main thread, so clients must not share it). */
async function spawnServer(opts: BenchOptions, maxBatch: number): Promise<{ url: string; stop: () => Promise<void> }> {
  const args = ['--json', 'serve', `bench=${opts.model}`, '--port', '0', '--device', opts.device, '--max-batch', String(maxBatch), '--prefix-cache-mb', '0'];
  if (opts.threads) args.push('--threads', String(opts.threads));
  const child: ResultPromise = execa(process.execPath, [opts.cli ?? join(packageRoot, 'bin', 'llmkit.js'), ...args], { reject: false, stdin: 'ignore', buffer: false });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line) resolve((JSON.parse(line) as { url: string }).url);
    });
    void child.then((r) => reject(new LlmkitError(`llmkit serve exited (${r.exitCode}) before listening: ${stderr.trim().split('\n').at(-1) ?? ''}`)));
  });
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM');
      await child;
    },
  };
}

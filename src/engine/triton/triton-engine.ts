import { UsageError } from '../../shared/errors.js';
import { IncrementalDetokenizer } from '../detokenizer.js';
import { TextSink } from '../text-sink.js';
import { checkFits, EngineRejection, maxNewTokens, type Choice, type GenerationEngine, type TextRequest } from '../engine-contract.js';
import { loadExportedModel, type ExportedModel } from '../model-manifest.js';
import { GREEDY } from '../sampling.js';
import type { FinishReason, Streamer } from '../streamer.js';
import { StreamingTextMatcher } from '../text-matcher.js';
import { ModelTokenizer } from '../tokenizer.js';
import { TritonClient, TritonUnreachable } from './triton-client.js';

export interface TritonEngineOptions {
  /** Triton's HTTP endpoint, e.g. http://127.0.0.1:8000. */
  url: string;
  /** The decoupled generate model (default: `<name>-generate`, as `llmkit export --triton` names it). */
  model: string;
}

/** How often Triton's readiness is checked: a stopped Triton is answered with 503 within this. */
const PROBE_INTERVAL_MS = 1000;

/**
 * Generation by a Triton Inference Server running the `<name>-generate` model that `llmkit export --triton`
 * writes. llmkit keeps the tokenizer, the context and quota checks, stop strings and the OpenAI layer; Triton runs
 * the decode loop and streams token ids. A stop string found here aborts the stream, which cancels the request in
 * Triton. Once Triton is seen down (a failed request, or the probe each second), requests are refused at once (503:
 * a streamed one before its event stream starts) and /ready says why; the same probe
 * notices when it is back.
 */
export class TritonEngine implements GenerationEngine {
  readonly device = 'triton';
  readonly deviceNotes: string[] = [];
  /** Nothing queues here (Triton does); batchSize counts the generations streaming from Triton. */
  readonly scheduler = { queueDepth: 0, batchSize: 0 };
  private down: string | null = null;
  private readonly probe: NodeJS.Timeout;
  private readonly inFlight = new Set<Promise<void>>();

  private constructor(
    readonly model: ExportedModel,
    readonly tokenizer: ModelTokenizer,
    private readonly client: TritonClient,
    private readonly tritonModel: string,
  ) {
    this.probe = setInterval(() => void this.check(), PROBE_INTERVAL_MS).unref();
  }

  /** `dir`: the export (or the repository's `<name>-generate/1` folder), for the tokenizer and the manifest. */
  static async open(dir: string, opts: TritonEngineOptions): Promise<TritonEngine> {
    const model = loadExportedModel(dir);
    const tokenizer = await ModelTokenizer.load(model.dir);
    const client = new TritonClient(opts.url);
    // Triton may well start after llmkit (it is then not ready until it does); a Triton without the model is a mistake.
    try {
      const models = await client.models();
      if (!models.some((m) => m.name === opts.model)) {
        throw new UsageError(
          `Triton at ${client.url} has no model ${opts.model} (it has: ${models.map((m) => m.name).join(', ') || 'none'})`,
          'pass --triton-model NAME, or export with `llmkit export --triton DIR` and start Triton on DIR',
        );
      }
    } catch (e) {
      if (!(e instanceof TritonUnreachable)) throw e;
    }
    const engine = new TritonEngine(model, tokenizer, client, opts.model);
    await engine.check();
    return engine;
  }

  get contextLength(): number {
    return this.model.manifest.max_position_embeddings;
  }

  async unavailable(): Promise<string | null> {
    return this.check();
  }

  generate(request: TextRequest, streamer: Streamer): void {
    this.generateChoices(request, [{ streamer }]);
  }

  /** Each choice is its own request to Triton (seed + i with a seed); nothing is shared between them there. */
  generateChoices(request: TextRequest, choices: readonly Choice[]): void {
    // Grammar masks and log-probabilities are computed on the logits, which stay inside Triton's model.
    if (choices.some((c) => c.processor)) throw new EngineRejection('unsupported', 'structured outputs (response_format, forced tool calls) are not available with --engine triton');
    if (request.logprobs !== undefined) throw new EngineRejection('unsupported', 'logprobs are not available with --engine triton');
    const maxTokens = maxNewTokens(request, this.contextLength);
    checkFits(request.promptIds.length, maxTokens, this.contextLength);
    if (this.down) throw new EngineRejection('unavailable', `${this.down}: generation is done there, try again once it is back`);
    for (const choice of choices) {
      const run = this.stream(choice.seed === undefined ? request : { ...request, sampling: { ...request.sampling, seed: choice.seed } }, maxTokens, choice.streamer);
      this.inFlight.add(run);
      void run.finally(() => this.inFlight.delete(run));
    }
  }

  private async stream(request: TextRequest, maxTokens: number, streamer: Streamer): Promise<void> {
    const sink = new TextSink(new IncrementalDetokenizer(this.tokenizer, request.promptIds), new StreamingTextMatcher(request.stop ?? []), streamer);
    const stopIds = request.ignoreEos ? [] : this.model.manifest.eos_token_ids;
    const stopHere = new AbortController();
    const signal = request.signal ? AbortSignal.any([request.signal, stopHere.signal]) : stopHere.signal;
    const sampling = { ...GREEDY, ...request.sampling };
    const inputs = {
      input_ids: request.promptIds,
      max_tokens: maxTokens,
      temperature: sampling.temperature,
      top_p: sampling.topP,
      top_k: sampling.topK,
      repetition_penalty: sampling.repetitionPenalty,
      frequency_penalty: sampling.frequencyPenalty,
      presence_penalty: sampling.presencePenalty,
      ignore_eos: request.ignoreEos ?? false,
      ...(sampling.seed === undefined ? {} : { seed: sampling.seed }),
    };
    const submitted = performance.now();
    let last = submitted;
    let timeToFirstTokenMs: number | undefined;
    const interTokenMs: number[] = [];
    let completionTokens = 0;
    const end = (reason: FinishReason, error?: Error) => sink.end({ reason, promptTokens: request.promptIds.length, completionTokens, timeToFirstTokenMs, interTokenMs, error });

    this.scheduler.batchSize++;
    try {
      let finish: unknown;
      for await (const event of this.client.generateStream(this.tritonModel, inputs, signal)) {
        if (event.error) throw new Error(`Triton: ${event.error}`);
        if (event.token_id !== undefined) {
          const token = Number(Array.isArray(event.token_id) ? event.token_id[0] : event.token_id);
          const now = performance.now();
          if (completionTokens === 0) timeToFirstTokenMs = now - submitted;
          else interTokenMs.push(now - last);
          last = now;
          completionTokens++;
          // A stop string here: closing the stream cancels the rest in Triton.
          if (!stopIds.includes(token) && sink.token(token)) {
            stopHere.abort();
            return end('stop');
          }
        }
        if (event.finish_reason !== undefined) finish = event.finish_reason;
      }
      if (request.signal?.aborted || finish === 'cancelled') return end('cancelled');
      if (finish === 'stop' || finish === 'length') return end(finish);
      end('error', new Error('Triton ended the stream without a finish_reason'));
    } catch (e) {
      if (request.signal?.aborted) return end('cancelled');
      // Refused, or cut mid-stream (Triton stopped): if Triton is gone, say so as unavailable (503), not as a failure.
      const down = e instanceof TritonUnreachable ? (this.down = e.message) : await this.check();
      end('error', down ? new EngineRejection('unavailable', `${down}: generation is done there, try again once it is back`) : (e as Error));
    } finally {
      this.scheduler.batchSize--;
    }
  }

  /** Asks Triton whether the model is ready; remembers the answer for generate(). */
  private async check(): Promise<string | null> {
    this.down = await this.client.modelUnavailable(this.tritonModel);
    return this.down;
  }

  async close(): Promise<void> {
    clearInterval(this.probe);
    await Promise.allSettled([...this.inFlight]);
  }
}

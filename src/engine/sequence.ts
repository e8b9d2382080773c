import { DRAFT_LENGTH_DEFAULTS, DraftLength } from './draft-length.js';
import type { Lane } from './engine-contract.js';
import type { LoraAdapter } from './lora-adapter.js';
import type { LogitsProcessor, TokenLogprob } from './logits-processor.js';
import { tokenLogprob } from './logprobs.js';
import { TokenSampler, type SamplingParams } from './sampling.js';
import type { FinishReason, GenerationEnd } from './streamer.js';

/** Receives one request's tokens as they are sampled. */
export interface TokenSink {
  /**
   * Called with each sampled token that is not a stop token, with its log-probability when the request
   * asked for them; returns true when the request is done (a stop string).
   */
  token(id: number, logprob?: TokenLogprob): boolean;
  /** Called exactly once, when the request leaves the scheduler for any reason. */
  end(end: GenerationEnd): void;
}

export interface GenerationRequest {
  promptIds: readonly number[];
  /** At most this many new tokens; prompt + maxTokens must fit the context. */
  maxTokens: number;
  sampling: SamplingParams;
  /** Tokens that end the generation (EOS); empty to generate exactly maxTokens. */
  stopTokenIds: readonly number[];
  sink: TokenSink;
  /** Aborting it frees the request's slot at the next step. */
  signal?: AbortSignal;
  /** Shapes the logits before sampling (a grammar's token mask). */
  processor?: LogitsProcessor;
  /** Report each token's log-probability with this many alternatives (0: the token's own only). */
  logprobs?: number;
  /** `batch`: waits behind interactive requests and gives its row up to them (see GenerationScheduler.preempt). */
  lane?: Lane;
  /** The LoRA adapter this row runs with (a session opened with LoRA inputs); none: the base model. */
  adapter?: LoraAdapter;
}

/**
 * Several completions of one prompt (OpenAI's `n`): the prompt is prefilled once, in the first request's
 * row, and its cache is copied into the others' rows when they join the batch. The requests must share
 * `promptIds`; each has its own sampler, seed, processor and sink.
 */
export type RequestGroup = readonly GenerationRequest[];

/** One request inside the scheduler: its sampler, its tokens so far, and its timings. */
export class Sequence {
  readonly sampler: TokenSampler;
  /** Tokens whose keys/values are in the cache. */
  cached = 0;
  /** The last sampled token, fed at the next decode step. */
  next = -1;
  /** Where this row's cached tokens end in the running batch's cache: the column its next token goes to. */
  column = 0;
  generated = 0;
  /** The sampled tokens, in order. */
  readonly output: number[] = [];
  finished?: FinishReason;
  /** Preempted for an interactive request: leaves the running batch at the next rebuild, then waits in the batch lane. */
  parked = false;
  /** One of a leader's followers. */
  follower = false;
  private readonly submittedAt = performance.now();
  private lastTokenAt = 0;
  private firstTokenMs?: number;
  private readonly gaps: number[] = [];

  /** How many tokens this row drafts a pass, when the scheduler has a drafter (none under a grammar constraint). */
  readonly draftLength?: DraftLength;

  constructor(
    readonly request: GenerationRequest,
    /** Rows that share this one's prompt and are prefilled with it (the rest of an `n` group). */
    readonly followers: Sequence[] = [],
    /** What drafting a token costs in target steps, when the scheduler drafts (Drafter.costPerToken). */
    draftCost?: number,
  ) {
    this.sampler = new TokenSampler(request.sampling, request.promptIds);
    // A grammar's mask is prepared for one next token a pass; it cannot judge drafted tokens ahead of it.
    if (draftCost !== undefined && !request.processor) this.draftLength = new DraftLength({ ...DRAFT_LENGTH_DEFAULTS, draftCost });
  }

  get batchLane(): boolean {
    return this.request.lane === 'batch';
  }

  /** A batch-lane row alone in its group can leave the batch and come back (groups share one prefill). */
  get preemptible(): boolean {
    return this.batchLane && !this.followers.length && !this.follower;
  }

  /** What a prefill feeds: the prompt, and for a row that was preempted, the tokens it had sampled (recomputed, as vLLM does). */
  get prefillIds(): readonly number[] {
    return this.output.length ? [...this.request.promptIds, ...this.output] : this.request.promptIds;
  }

  /** Tokens this request (and its followers) may hold at most: what counts against maxTokensTotal. */
  get tokens(): number {
    return (this.request.promptIds.length + this.request.maxTokens) * (1 + this.followers.length);
  }

  /** This row and its followers. */
  get group(): Sequence[] {
    return [this, ...this.followers];
  }

  /** The tokens whose keys/values are in the cache: the prompt, then the output but its last token (not fed yet). */
  get cachedIds(): number[] {
    return [...this.request.promptIds, ...this.output].slice(0, this.cached);
  }

  get cancelled(): boolean {
    return !this.finished && this.request.signal?.aborted === true;
  }

  /** Samples the next token from this row's logits; ends the request on a stop token, a stop string or max tokens. */
  advance(logits: Float32Array): void {
    const { processor } = this.request;
    const remaining = this.request.maxTokens - this.generated;
    const token = this.sampler.sample(logits, processor && ((row) => processor.apply(row, remaining)));
    processor?.accept(token);
    this.take(token, logits);
  }

  /** Takes the token the device chose (see TokenSampler.deviceChoice): no logits crossed, so no grammar and no logprobs. */
  advanceWith(token: number): void {
    this.take(this.sampler.record(token));
  }

  /**
   * Goes through a verification pass's logits for this row (`logits`: one row per fed token: the last token,
   * then `draft`): each drafted token is accepted or replaced by the rejection rule, and the first replaced
   * one, or the token after the whole draft, ends the walk. Returns how many fed tokens stay in the cache:
   * those before the first rejection (each emitted token's predecessor).
   */
  acceptDraft(logits: Float32Array, vocab: number, draft: readonly number[]): number {
    const row = (i: number) => logits.subarray(i * vocab, (i + 1) * vocab);
    let accepted = 0;
    while (accepted < draft.length && !this.finished) {
      const token = this.sampler.verify(row(accepted), draft[accepted]);
      this.take(token, row(accepted));
      if (token !== draft[accepted]) break;
      accepted++;
    }
    this.draftLength?.record(draft.length, accepted);
    if (accepted === draft.length && !this.finished) this.advance(row(draft.length));
    return accepted + 1;
  }

  /** Emits a chosen token; `logits` is the row it was chosen from (for its log-probability). */
  private take(token: number, logits?: Float32Array): void {
    const { logprobs } = this.request;
    const logprob = logprobs === undefined || !logits ? undefined : tokenLogprob(logits, token, logprobs);
    const now = performance.now();
    if (this.generated === 0) this.firstTokenMs = now - this.submittedAt;
    else this.gaps.push(now - this.lastTokenAt);
    this.lastTokenAt = now;
    this.generated++;
    this.output.push(token);
    this.next = token;
    const { request } = this;
    if (request.stopTokenIds.includes(token)) this.finish('stop', undefined, logprob);
    else if (request.sink.token(token, logprob)) this.finish('stop');
    else if (this.generated >= request.maxTokens) this.finish('length');
  }

  finish(reason: FinishReason, error?: Error, stopLogprob?: TokenLogprob): void {
    if (this.finished) return;
    this.finished = reason;
    this.request.sink.end({
      reason,
      promptTokens: this.request.promptIds.length,
      completionTokens: this.generated,
      timeToFirstTokenMs: this.firstTokenMs,
      interTokenMs: this.gaps,
      error,
      stopLogprob,
    });
  }
}

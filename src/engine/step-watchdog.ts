import { EngineRejection } from './engine-contract.js';

/** How long one step (a prefill pass, a decode step, a draft) may take before its requests are failed. */
export const DEFAULT_STEP_TIMEOUT_MS = 60_000;

/** What the watchdog reports: a step or a batch that got stuck, and the first step that completed after it. */
export type WatchdogEvent = { kind: 'stuck' | 'failed'; message: string; failed: number } | { kind: 'recovered'; message: string };

/**
 * Bounds every step of a scheduler. A step that does not return within the limit is abandoned (its requests
 * fail with `unavailable`, so clients get a 503 with Retry-After instead of a stream that never ends), and the
 * engine says it is unavailable (`/ready` 503) until a later step completes or the abandoned one returns.
 * An ONNX Runtime run cannot be interrupted; the abandoned one only writes into the cache its rows had,
 * which the scheduler drops with them.
 */
export class StepWatchdog {
  /** Why the engine is unavailable, while it is. */
  private stuck?: string;
  /** Abandoned steps that have not returned yet. */
  private abandoned = 0;

  constructor(
    readonly limitMs: number,
    private readonly report: (event: WatchdogEvent) => void = () => {},
  ) {}

  /** Why the engine cannot be trusted with requests now, or null. */
  get unavailable(): string | null {
    return this.stuck ?? null;
  }

  /** Steps given up on that are still running (their session must not be released under them). */
  get abandonedSteps(): number {
    return this.abandoned;
  }

  /** `step`, or a rejection once it has taken longer than the limit. `what` names it in the error ("decode step"). */
  async guard<T>(what: string, step: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.timeout(`the ${what} did not return within ${this.limitMs / 1000} s`)), this.limitMs);
    });
    try {
      const out = await Promise.race([step, late]);
      this.recover(`a ${what} completed`);
      return out;
    } catch (e) {
      if (e instanceof StepTimeout) this.abandon(step);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Records that the scheduler failed `failed` requests because of `error` (a timeout of guard, or a batch that made no progress). */
  stuckOn(error: StepTimeout, failed: number): void {
    if (!this.stuck) this.stuck = `${error.why} at ${new Date().toISOString()}; waiting for a step to complete`;
    this.report({ kind: 'stuck', message: error.why, failed });
  }

  /** Records that the scheduler failed `failed` requests on a fault outside any one row (it goes on with new ones). */
  failed(error: Error, failed: number): void {
    this.report({ kind: 'failed', message: error.message, failed });
  }

  /** The error for requests of a step or batch that got stuck. */
  timeout(why: string): StepTimeout {
    return new StepTimeout(why);
  }

  private abandon(step: Promise<unknown>): void {
    this.abandoned++;
    void step
      .catch(() => {})
      .finally(() => {
        this.abandoned--;
        if (!this.abandoned) this.recover('the abandoned step returned');
      });
  }

  private recover(why: string): void {
    if (!this.stuck) return;
    this.stuck = undefined;
    this.report({ kind: 'recovered', message: why });
  }
}

/** A request failed by the watchdog: a 503 (`unavailable`), as the engine could not serve it in time. */
export class StepTimeout extends EngineRejection {
  constructor(
    /** What got stuck: "the decode step did not return within 60 s". */
    readonly why: string,
  ) {
    super('unavailable', `${why}: the server's watchdog ended this request; try again shortly`);
    this.name = 'StepTimeout';
  }
}

import { NGRAM_DEFAULTS, proposeFromContext, type NgramOptions } from './draft-ngram.js';

/** One running row asking for a draft: its whole text so far (prompt, then output) and how many tokens to draft. */
export interface DraftRequest {
  /** Identifies the row across passes (a drafter with its own cache keeps it per row). */
  row: object;
  /** Prompt and output tokens; the last one is the token the next pass feeds. */
  context: readonly number[];
  k: number;
}

/**
 * Proposes the tokens that follow each row's context, for the target to verify in one pass (speculative
 * decoding). A proposal is one-hot: the scheduler's rejection rule treats each drafted token as certain.
 */
export interface Drafter {
  readonly name: string;
  propose(requests: readonly DraftRequest[]): Promise<number[][]>;
  /** The row left the batch: drop what is kept for it. */
  forget(row: object): void;
  release(): Promise<void>;
}

/** `--draft ngram`: prompt lookup, no model. */
export class NgramDrafter implements Drafter {
  readonly name = 'ngram';

  constructor(private readonly opts: NgramOptions = NGRAM_DEFAULTS) {}

  async propose(requests: readonly DraftRequest[]): Promise<number[][]> {
    return requests.map((r) => proposeFromContext(r.context, r.k, this.opts));
  }

  forget(): void {}

  async release(): Promise<void> {}
}

/**
 * How many tokens a row drafts next, from how often its drafts have been accepted. With a per-token acceptance
 * rate a, a verification pass over k drafted tokens yields (1 - a^(k+1)) / (1 - a) tokens on average and costs
 * about 1 + c·k decode steps (c: what one more position adds to a pass); k is the one that yields the most per
 * unit of cost. The rate is a moving average, so k follows a row from prose (drafts rejected) into copied text
 * (drafts accepted) and back.
 */
export interface DraftLengthOptions {
  maxK: number;
  /** The cost of one more position in a verification pass, in decode steps. */
  costPerToken: number;
  /** Weight of the newest pass in the moving average. */
  smoothing: number;
}

export const DRAFT_LENGTH_DEFAULTS: DraftLengthOptions = { maxK: 8, costPerToken: 0.1, smoothing: 0.3 };

export class DraftLength {
  /** Moving average of the share of drafted tokens accepted; starts hopeful so that a row gets to try. */
  private rate = 0.6;
  private current: number;
  proposed = 0;
  accepted = 0;

  constructor(private readonly opts: DraftLengthOptions = DRAFT_LENGTH_DEFAULTS) {
    this.current = bestLength(this.rate, opts);
  }

  /** Tokens to draft for the next pass (at least 1: a row that stopped drafting would never learn it got better). */
  get k(): number {
    return this.current;
  }

  /** Records one pass: `accepted` of `proposed` drafted tokens were kept. */
  record(proposed: number, accepted: number): void {
    if (proposed === 0) return;
    this.proposed += proposed;
    this.accepted += accepted;
    // Accepting all of them says less about the rate than the count suggests (the draft may have gone on): one more.
    const observed = accepted === proposed ? (accepted + 1) / (proposed + 1) : accepted / (accepted + 1);
    this.rate += this.opts.smoothing * (observed - this.rate);
    this.current = bestLength(this.rate, this.opts);
  }
}

/** The k in 1..maxK with the most expected tokens per unit of cost at acceptance rate `rate`. */
export function bestLength(rate: number, opts: DraftLengthOptions): number {
  let best = 1;
  let bestValue = 0;
  for (let k = 1; k <= opts.maxK; k++) {
    const tokens = rate >= 1 ? k + 1 : (1 - rate ** (k + 1)) / (1 - rate);
    const value = tokens / (1 + opts.costPerToken * k);
    if (value > bestValue + 1e-12) [best, bestValue] = [k, value];
  }
  return best;
}

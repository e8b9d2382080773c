/**
 * How many tokens a row drafts next, from how often its drafts have been accepted. With a per-token acceptance
 * rate a, a verification pass over k drafted tokens yields (1 - a^(k+1)) / (1 - a) tokens on average and costs
 * about 1 + (c + d)·k decode steps (c: what one more position adds to a pass; d: what drafting a token costs, 0 for
 * prompt lookup); k is the one that yields the most per unit of cost, or 0 (no draft) when no k beats a plain step,
 * with a one-token probe every PROBE_EVERY steps to notice when drafts start to land. The rate is a moving average,
 * so k follows a row from prose (drafts rejected) into copied text (drafts accepted) and back.
 */
export interface DraftLengthOptions {
  maxK: number;
  /** The cost of one more position in a verification pass, in decode steps. */
  costPerToken: number;
  /** Weight of the newest pass in the moving average. */
  smoothing: number;
  /** What drafting one token costs, in decode steps of the target. */
  draftCost: number;
}

export const DRAFT_LENGTH_DEFAULTS: DraftLengthOptions = { maxK: 8, costPerToken: 0.1, smoothing: 0.3, draftCost: 0 };

/** A row that stopped drafting tries one token this often, in steps. */
export const PROBE_EVERY = 16;

export class DraftLength {
  /** Moving average of the share of drafted tokens accepted; starts hopeful so that a row gets to try. */
  private rate = 0.6;
  private current: number;
  /** Steps since the row last drafted, while drafting does not pay. */
  private idle = 0;
  proposed = 0;
  accepted = 0;

  constructor(private readonly opts: DraftLengthOptions = DRAFT_LENGTH_DEFAULTS) {
    this.current = bestLength(this.rate, opts);
  }

  /** Tokens to draft for this step: the best k, or 0 while drafting does not pay, but 1 every PROBE_EVERY steps. */
  next(): number {
    if (this.current > 0) return this.current;
    return ++this.idle % PROBE_EVERY === 0 ? 1 : 0;
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

/** The k in 1..maxK with the most expected tokens per unit of cost at acceptance rate `rate`; 0 when none beats a plain step. */
export function bestLength(rate: number, opts: DraftLengthOptions): number {
  let best = 0;
  let bestValue = 1;
  for (let k = 1; k <= opts.maxK; k++) {
    const tokens = rate >= 1 ? k + 1 : (1 - rate ** (k + 1)) / (1 - rate);
    const value = tokens / (1 + (opts.costPerToken + opts.draftCost) * k);
    if (value > bestValue + 1e-12) [best, bestValue] = [k, value];
  }
  return best;
}

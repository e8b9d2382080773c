/**
 * A per-request hook between the model's logits and the sampler: how grammar-constrained decoding
 * (JSON Schema, tool calls) forbids tokens. The scheduler calls `prepare` while the model computes the
 * step's logits, so that a grammar's work overlaps the forward pass instead of following it.
 */
export interface LogitsProcessor {
  /** Gets ready for the next token (e.g. computes the grammar's token mask); runs during the forward pass. */
  prepare(): Promise<void> | void;
  /**
   * Forbids tokens in one row of logits (penalties already applied) by setting them to -Infinity.
   * `remaining` counts the tokens the request may still generate, this one included.
   */
  apply(logits: Float32Array, remaining: number): void;
  /** Sees the token that was chosen. */
  accept(token: number): void;
}

/** One generated token's log-probability and the most likely alternatives at its position. */
export interface TokenLogprob {
  id: number;
  logprob: number;
  /** The `top` most likely tokens, most likely first (empty when none were asked for). */
  top: { id: number; logprob: number }[];
}

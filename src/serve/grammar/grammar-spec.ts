/** What a grammar constraint is asked for, and what its threads start with. */

/** What the output must be. */
export type GrammarSpec =
  /** Any JSON value that is an object (`response_format: json_object`). */
  | { kind: 'json_object' }
  /** A JSON Schema; `strict` forbids properties and items the schema does not list. */
  | { kind: 'json_schema'; schema: unknown; strict: boolean }
  /** XGrammar's structural tag: text around JSON (a Hermes `<tool_call>` block). */
  | { kind: 'structural_tag'; format: object };

/** What XGrammar's threads (grammar-thread.ts, compile-thread.ts) are started with. */
export interface ThreadOptions {
  dir: string;
  /** Width of the model's logits (may exceed the tokenizer's vocabulary). */
  vocabSize: number;
  stopTokenIds: readonly number[];
}

/** A schema or format XGrammar refused, or one over this server's limits (a 400 for the client). */
export class GrammarError extends Error {
  override name = 'GrammarError';
}

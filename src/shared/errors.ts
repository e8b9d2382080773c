/**
 * An error a user can act on: a one-line message and a hint saying what to do.
 * The CLI prints these without a stack trace; anything else is a bug and gets one with --verbose.
 */
export class LlmkitError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    readonly exitCode = 1,
    /** Longer context (a worker's stderr tail, say) shown with --verbose. */
    readonly details?: string,
  ) {
    super(message);
    this.name = 'LlmkitError';
  }
}

/** Bad flags or arguments: exit code 2, like commander's own usage errors. */
export class UsageError extends LlmkitError {
  constructor(message: string, hint?: string) {
    super(message, hint, 2);
    this.name = 'UsageError';
  }
}

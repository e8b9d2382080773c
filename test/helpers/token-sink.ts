import type { TokenSink } from '../../src/engine/sequence.js';
import type { GenerationEnd } from '../../src/engine/streamer.js';

/** A sink that keeps the tokens, runs `onToken` on each (it may throw: a client that breaks), and resolves when the request ends. */
export function collector(onToken?: (tokens: number[]) => void) {
  const tokens: number[] = [];
  let resolve!: (end: GenerationEnd) => void;
  const done = new Promise<GenerationEnd>((r) => (resolve = r));
  const sink: TokenSink = {
    token: (id) => {
      tokens.push(id);
      onToken?.(tokens);
      return false;
    },
    end: resolve,
  };
  return { tokens, done, sink };
}

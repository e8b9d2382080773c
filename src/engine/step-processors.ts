import type { Sequence } from './sequence.js';

/**
 * Lets every row's processor get ready for its next token while `step` (the forward pass) runs. A processor
 * that fails ends its own row with the error; the other rows go on.
 */
export async function withProcessors<T>(step: Promise<T>, seqs: readonly Sequence[]): Promise<T> {
  const ready = seqs.map(async (s) => {
    if (s.finished || !s.request.processor) return;
    try {
      await s.request.processor.prepare();
    } catch (e) {
      s.finish('error', e as Error);
    }
  });
  const [out] = await Promise.all([step, ...ready]);
  return out;
}

import { spanMask } from './kv-cache.js';

/** A decoder's token inputs for a batch: row-major, `rows × columns` (the mask spans the cache too). */
export interface StepInputs {
  ids: BigInt64Array;
  mask: BigInt64Array;
  positions: BigInt64Array;
}

/** Prompts left-padded to `width`: padding has id 0 and mask 0, and each prompt's positions start at 0 on its first token. */
export function leftPaddedPrompts(prompts: readonly (readonly number[])[], width: number): StepInputs {
  const ids = new BigInt64Array(prompts.length * width);
  const mask = new BigInt64Array(prompts.length * width);
  const positions = new BigInt64Array(prompts.length * width);
  prompts.forEach((prompt, b) => {
    const pad = width - prompt.length;
    prompt.forEach((t, i) => {
      ids[b * width + pad + i] = BigInt(t);
      mask[b * width + pad + i] = 1n;
      positions[b * width + pad + i] = BigInt(i);
    });
  });
  return { ids, mask, positions };
}

/** Columns `done .. done + columns` of left-padded prompts, with the mask of everything up to them (the cache holds `done`). */
export function promptColumns(prompts: StepInputs, rows: number, width: number, done: number, columns: number): StepInputs {
  const ids = new BigInt64Array(rows * columns);
  const positions = new BigInt64Array(rows * columns);
  const mask = new BigInt64Array(rows * (done + columns));
  for (let b = 0; b < rows; b++) {
    const from = b * width;
    ids.set(prompts.ids.subarray(from + done, from + done + columns), b * columns);
    positions.set(prompts.positions.subarray(from + done, from + done + columns), b * columns);
    mask.set(prompts.mask.subarray(from, from + done + columns), b * (done + columns));
  }
  return { ids, mask, positions };
}

/**
 * One decode step: each row feeds its last sampled token, and then its drafted tokens if it has any (speculative
 * decoding verifies them in the same pass), at the positions after its cached tokens; rows with shorter drafts
 * are padded to the longest (repeating their last token, masked). Each row's cached tokens end at its own
 * `column` of the cache.
 */
export function decodeInputs(rows: readonly { next: number; cached: number; column: number }[], drafts: readonly (readonly number[])[], capacity: number): StepInputs {
  const width = 1 + Math.max(0, ...drafts.map((d) => d.length));
  const ids = new BigInt64Array(rows.length * width);
  const positions = new BigInt64Array(rows.length * width);
  rows.forEach((r, b) => {
    const fed = [r.next, ...drafts[b]];
    for (let i = 0; i < width; i++) {
      ids[b * width + i] = BigInt(fed[Math.min(i, fed.length - 1)]);
      positions[b * width + i] = BigInt(r.cached + i);
    }
  });
  const mask = spanMask(
    rows.map((r) => r.cached),
    rows.map((r) => r.column),
    width,
    capacity,
    drafts.map((d) => 1 + d.length),
  );
  return { ids, mask, positions };
}

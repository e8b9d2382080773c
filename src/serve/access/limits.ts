import { z } from 'zod';

/** What a key, account, model or feature may use; keys fall back to the quota file's defaults (or --rpm / --tpm). */
export const LimitsSchema = z.strictObject({
  /** Requests per minute. */
  rpm: z.number().int().positive().optional(),
  /** Prompt + generated tokens per minute. */
  tpm: z.number().int().positive().optional(),
  /** Prompt + generated tokens per rolling day. */
  tpd: z.number().int().positive().optional(),
});
export type Limits = z.infer<typeof LimitsSchema>;

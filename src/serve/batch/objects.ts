import { randomBytes } from 'node:crypto';
import { z } from 'zod';

/**
 * The Files and Batches API's objects in OpenAI's shapes (platform.openai.com/docs/api-reference/batch), and the
 * lines of their input and output files.
 */

/** The endpoints a batch line may call: the ones this server generates on. */
export const BATCH_ENDPOINTS = ['/v1/chat/completions', '/v1/completions'] as const;
export type BatchEndpoint = (typeof BATCH_ENDPOINTS)[number];

/** The one completion window OpenAI offers. */
export const COMPLETION_WINDOW = '24h';
export const COMPLETION_WINDOW_S = 24 * 3600;

/** OpenAI's limits on one batch. */
export const MAX_BATCH_LINES = 50_000;
export const DEFAULT_MAX_FILE_MB = 200;

export type BatchStatus = 'validating' | 'failed' | 'in_progress' | 'finalizing' | 'completed' | 'expired' | 'cancelling' | 'cancelled';

export interface FileObject {
  id: string;
  object: 'file';
  bytes: number;
  created_at: number;
  filename: string;
  purpose: string;
  status: 'processed';
  status_details: null;
  expires_at: number | null;
}

/** One problem of an input file, as OpenAI reports it in `batch.errors.data`: `line` counts from 1. */
export interface LineError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

export interface RequestCounts {
  total: number;
  completed: number;
  failed: number;
}

export interface BatchObject {
  id: string;
  object: 'batch';
  endpoint: BatchEndpoint;
  errors: { object: 'list'; data: LineError[] } | null;
  input_file_id: string;
  completion_window: string;
  status: BatchStatus;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: RequestCounts;
  usage: { input_tokens: number; output_tokens: number; total_tokens: number };
  metadata: Record<string, string> | null;
}

/** `POST /v1/batches`. */
export const CreateBatchSchema = z.strictObject({
  input_file_id: z.string().min(1),
  endpoint: z.enum(BATCH_ENDPOINTS, { error: `endpoint must be one of ${BATCH_ENDPOINTS.join(', ')}` }),
  completion_window: z.literal(COMPLETION_WINDOW, { error: `completion_window must be '${COMPLETION_WINDOW}'` }),
  // OpenAI's metadata: at most 16 pairs, keys up to 64 characters, values up to 512.
  metadata: z
    .record(z.string().max(64), z.string().max(512))
    .refine((m) => Object.keys(m).length <= 16, { error: 'metadata holds at most 16 pairs' })
    .nullish(),
  output_expires_after: z.unknown().optional(),
});

/** One request of an input file, after validation. */
export interface BatchLine {
  /** 1-based line number in the input file. */
  line: number;
  custom_id: string;
  url: BatchEndpoint;
  body: Record<string, unknown>;
}

/** One line of an output or error file. */
export interface ResultLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: unknown } | null;
  error: { code: string; message: string } | null;
}

export const newId = (prefix: string) => `${prefix}${randomBytes(12).toString('hex')}`;

export const nowSeconds = () => Math.floor(Date.now() / 1000);

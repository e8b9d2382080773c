import { z } from 'zod';

/**
 * The JSON-line events a Python job writes on stdout (mirrors llmkit_worker/protocol.py).
 * Extra fields pass through: jobs add what they measure.
 */
const base = z.looseObject({});

export const WorkerEventSchema = z.discriminatedUnion('event', [
  base.extend({ event: z.literal('start'), job: z.string(), total_steps: z.number().optional() }),
  base.extend({
    event: z.literal('progress'),
    step: z.number(),
    total: z.number().optional(),
    loss: z.number().optional(),
    lr: z.number().optional(),
    tokens_per_s: z.number().optional(),
    message: z.string().optional(),
    /** A part of a job that has steps of its own (quantize's "measure"); a `start` event begins one too. */
    phase: z.string().optional(),
  }),
  base.extend({ event: z.literal('metric'), name: z.string() }),
  base.extend({ event: z.literal('log'), level: z.string(), message: z.string() }),
  base.extend({ event: z.literal('artifact'), kind: z.string(), path: z.string() }),
  base.extend({ event: z.literal('result') }),
  base.extend({ event: z.literal('interrupted'), step: z.number(), checkpoint: z.string().nullable() }),
  base.extend({
    event: z.literal('error'),
    kind: z.enum(['bad_input', 'missing_package', 'oom', 'crash']),
    message: z.string(),
    where: z.string().nullish(),
    hint: z.string().nullish(),
    package: z.string().nullish(),
    /** Under torchrun: the rank that failed (the others' events are not sent). */
    rank: z.number().nullish(),
  }),
]);

export type WorkerEvent = z.infer<typeof WorkerEventSchema>;
export type ProgressEvent = Extract<WorkerEvent, { event: 'progress' }>;
export type ErrorEvent = Extract<WorkerEvent, { event: 'error' }>;
export type InterruptedEvent = Extract<WorkerEvent, { event: 'interrupted' }>;

/** Parses one stdout line; anything that is not an event becomes a log line, so no output is lost. */
export function parseWorkerLine(line: string): WorkerEvent {
  try {
    const parsed = WorkerEventSchema.safeParse(JSON.parse(line));
    if (parsed.success) return parsed.data;
  } catch {
    // not JSON: fall through
  }
  return { event: 'log', level: 'stdout', message: line };
}

import type OpenAI from 'openai';
import { expect } from 'vitest';

/** A line of a batch's output file. */
export type OutputLine = { id: string; custom_id: string; response: { status_code: number; body: OpenAI.ChatCompletion } };

/** Generations a server ran, from /metrics (finish reason length: every batch line of these tests runs to max_tokens). */
export async function generations(apiUrl: string): Promise<number> {
  const text = await (await fetch(apiUrl.replace(/\/v1$/, '/metrics'))).text();
  return Number(text.match(/^llmkit_generations_total\{model="tiny",finish_reason="length"\} (\d+)/m)?.[1] ?? 0);
}

/**
 * A finished batch's output, checked to hold each of `total` lines once, the lines on disk before an interruption
 * (`before`) as the same records (not runs made again); returned by custom_id.
 */
export async function outputOnce(client: OpenAI, batch: OpenAI.Batch, total: number, before: readonly { id: string; custom_id: string }[]): Promise<Map<string, OutputLine>> {
  const output = (await (await client.files.content(batch.output_file_id!)).text())
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as OutputLine);
  expect(output).toHaveLength(total);
  expect(new Set(output.map((l) => l.custom_id)).size).toBe(total);
  const byCustomId = new Map(output.map((l) => [l.custom_id, l]));
  for (const line of before) expect(byCustomId.get(line.custom_id)!.id).toBe(line.id);
  return byCustomId;
}

import type { NativeRequest } from '../openai/translate.js';

/** Request kinds that can be limited (every caller together) or denied (per key or account). */
export const FEATURES = ['stream', 'websocket', 'n', 'tools', 'response_format', 'logprobs', 'long_context', 'batch'] as const;
export type Feature = (typeof FEATURES)[number];

/** The features a request uses, read from the request as parsed (what it asks for, not how its body spelled it). */
export function requestFeatures(
  request: Pick<NativeRequest, 'n' | 'tools' | 'format' | 'logprobs'>,
  opts: { stream: boolean; websocket: boolean; batch?: boolean; promptTokens: number; longContextTokens: number },
): Feature[] {
  const features: Feature[] = [];
  if (opts.stream) features.push('stream');
  if (opts.websocket) features.push('websocket');
  if (opts.batch) features.push('batch');
  if (request.n > 1) features.push('n');
  if (request.tools) features.push('tools');
  if (request.format) features.push('response_format');
  if (request.logprobs !== undefined) features.push('logprobs');
  if (opts.promptTokens > opts.longContextTokens) features.push('long_context');
  return features;
}

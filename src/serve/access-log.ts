/** One request as the access log records it. */
export interface AccessEntry {
  remote: string;
  method: string;
  path: string;
  status: number;
  ms: number;
  /** The API key's name (never the key). */
  key?: string;
  model?: string;
  transport?: 'json' | 'sse' | 'ws';
  promptTokens?: number;
  completionTokens?: number;
  finish?: string;
  /** `hit` or `miss` for cacheable requests when the response cache is on. */
  cache?: string;
  error?: string;
}

/** `<time> <remote> "<method> <path>" <status> <ms>ms key=… model=… …`: one line per request. */
export function formatAccessLine(e: AccessEntry, time = new Date()): string {
  const fields: [string, string | number | undefined][] = [
    ['key', e.key],
    ['model', e.model],
    ['transport', e.transport],
    ['prompt_tokens', e.promptTokens],
    ['completion_tokens', e.completionTokens],
    ['finish', e.finish],
    ['cache', e.cache],
    ['error', e.error],
  ];
  const extra = fields.filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => `${k}=${typeof v === 'string' && /\s/.test(v) ? JSON.stringify(v) : v}`);
  return [time.toISOString(), e.remote, `"${e.method} ${e.path}"`, e.status, `${Math.round(e.ms)}ms`, ...extra].join(' ');
}

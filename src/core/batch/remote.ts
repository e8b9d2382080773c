import type { LineExecutor } from '../../serve/batch/line-pool.js';

/** Seconds to wait before trying a server that could not be reached again. */
const UNREACHABLE_RETRY_S = 2;

const headers = (apiKey: string | undefined) => ({ 'Content-Type': 'application/json', ...(apiKey ? { Authorization: `Bearer ${apiKey}` } : {}) });

/** Lines POSTed to an OpenAI-compatible server: its status and body are the line's result. */
export function remoteExecutor(base: string, apiKey: string | undefined): LineExecutor {
  return async (line, signal) => {
    let res: Response;
    try {
      res = await fetch(`${base}${line.url}`, { method: 'POST', headers: headers(apiKey), body: JSON.stringify(line.body), signal });
    } catch (e) {
      if (signal.aborted) return undefined;
      // Unreachable counts as busy: tried again, and after the retries the line records why.
      return {
        status: 503,
        body: { error: { message: `${base} could not be reached: ${(e as Error).message}`, type: 'server_error', param: null, code: 'unreachable' } },
        retryAfterS: UNREACHABLE_RETRY_S,
      };
    }
    const text = await res.text().catch(() => '');
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = { error: { message: text.slice(0, 500) || res.statusText, type: 'server_error', param: null, code: null } };
    }
    return { status: res.status, body, retryAfterS: Number(res.headers.get('retry-after')) || undefined };
  };
}

/** The model ids a server lists at /v1/models, or undefined when it does not say (the lines' models are then not checked). */
export async function remoteModels(base: string, apiKey: string | undefined): Promise<string[] | undefined> {
  try {
    const res = await fetch(`${base}/v1/models`, { headers: headers(apiKey) });
    if (!res.ok) return undefined;
    const list = (await res.json()) as { data?: { id?: unknown }[] };
    const ids = list.data?.map((m) => m.id).filter((id): id is string => typeof id === 'string');
    return ids?.length ? ids : undefined;
  } catch {
    return undefined;
  }
}

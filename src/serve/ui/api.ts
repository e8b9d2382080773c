/**
 * The page's calls to the server it came from. The API key is entered once and kept in the browser's
 * localStorage; every call sends it as `Authorization: Bearer`, so the page follows the server's auth rules.
 */
const KEY_ITEM = 'llmkit.apiKey';

export function apiKey(): string {
  return localStorage.getItem(KEY_ITEM) ?? '';
}

export function setApiKey(key: string): void {
  if (key) localStorage.setItem(KEY_ITEM, key);
  else localStorage.removeItem(KEY_ITEM);
}

/** An OpenAI-style error answer: status, code and message, shown as they came. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string | null,
    message: string,
  ) {
    super(message);
  }

  get isAuth(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

export function headers(json = false): Record<string, string> {
  const h: Record<string, string> = {};
  if (apiKey()) h.Authorization = `Bearer ${apiKey()}`;
  if (json) h['Content-Type'] = 'application/json';
  return h;
}

/** Throws ApiFailure for a non-2xx answer, with the server's own error message. */
export async function checked(res: Response): Promise<Response> {
  if (res.ok) return res;
  let code: string | null = null;
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { error?: { message?: string; code?: string | null } };
    if (body.error?.message) message = body.error.message;
    code = body.error?.code ?? null;
  } catch {
    // Not JSON: the status line says enough.
  }
  throw new ApiFailure(res.status, code, message);
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await checked(await fetch(path, { headers: headers() }))).json()) as T;
}

export interface ModelInfo {
  id: string;
  context_length: number;
  device: string;
  /** A LoRA adapter's base model id (null or absent for a base). */
  parent?: string | null;
}

export interface ModelGroup {
  base: string;
  /** The base itself when it is listed (an adapter's base may not be, e.g. hidden by a key's model list). */
  model?: ModelInfo;
  adapters: ModelInfo[];
}

/** The picker's groups: each base with the adapters that run over it, in /v1/models' order. */
export function groupByBase(models: ModelInfo[]): ModelGroup[] {
  const groups = new Map<string, ModelGroup>();
  const group = (base: string) => groups.get(base) ?? groups.set(base, { base, adapters: [] }).get(base)!;
  for (const m of models) {
    if (m.parent) group(m.parent).adapters.push(m);
    else group(m.id).model = m;
  }
  return [...groups.values()];
}

export async function listModels(): Promise<ModelInfo[]> {
  return (await getJson<{ data: ModelInfo[] }>('/v1/models')).data;
}

export function describeFailure(e: unknown): string {
  if (e instanceof ApiFailure) {
    const what = e.isAuth ? 'authentication failed' : `error ${e.status}`;
    return `${what}${e.code ? ` (${e.code})` : ''}: ${e.message}${e.isAuth ? ' — enter a valid API key above' : ''}`;
  }
  return e instanceof Error ? e.message : String(e);
}

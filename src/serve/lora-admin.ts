/**
 * Loading and unloading LoRA adapters while serving, the way vLLM's runtime LoRA API does it:
 * POST /v1/load_lora_adapter {"lora_name": "NAME[@VERSION]", "lora_path": "/path/to/adapter"} and
 * POST /v1/unload_lora_adapter {"lora_name": "…"}, keyed by the admin key (`--admin-key`, $LLMKIT_ADMIN_KEY).
 * A loaded adapter is a model at once (/v1/models, requests, quotas, metrics); an unloaded one answers 404 to
 * new requests while those already running finish with it.
 */
import { LlmkitError } from '../shared/errors.js';
import type { Authenticator } from './access/auth.js';
import { parseModelSpec, type ModelRegistry, type ServedModel } from './model-registry.js';
import { ApiError } from './openai/errors.js';

export const LORA_ADMIN_ROUTES = new Set(['/v1/load_lora_adapter', '/v1/unload_lora_adapter']);
export const ADMIN_KEY_ENV = 'LLMKIT_ADMIN_KEY';

/** The adapter as /v1/models shows it. */
export function adapterCard(m: ServedModel) {
  return { id: m.id, object: 'model', created: m.created, owned_by: 'llmkit', parent: m.parent ?? null, root: m.adapterPath ?? m.engine.model.dir };
}

function field(body: unknown, name: string): string {
  const value = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[name] : undefined;
  if (typeof value !== 'string' || !value) throw new ApiError(400, `'${name}' is required and must be a non-empty string`, 'invalid_request_error', name);
  return value;
}

/** Runs one admin request; `admin` undefined means the server was started without an admin key (the API is off). */
export async function handleLoraAdmin(pathname: string, authorization: string | undefined, body: unknown, models: ModelRegistry, admin: Authenticator | undefined) {
  if (!admin) throw new ApiError(404, `${pathname} is off: start the server with --admin-key (or $${ADMIN_KEY_ENV}) to load and unload LoRA adapters at run time`, 'unknown_url');
  admin.authenticate(authorization);
  const name = field(body, 'lora_name');
  if (pathname === '/v1/unload_lora_adapter') return { ...adapterCard(models.removeAdapter(name)), unloaded: true };
  const path = field(body, 'lora_path');
  try {
    return adapterCard(await models.addAdapter(parseModelSpec(`${name}=${path}`)));
  } catch (e) {
    if (e instanceof LlmkitError) throw new ApiError(400, e.hint ? `${e.message} (${e.hint})` : e.message, 'invalid_request_error', 'lora_path');
    throw e;
  }
}

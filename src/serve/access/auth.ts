import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { UsageError } from '../../shared/errors.js';
import { ApiError } from '../openai/errors.js';
import type { Feature } from './features.js';
import type { Limits } from './limits.js';

/** An API key, its account and its own limits (each falls back to the quota file's defaults, or --rpm / --tpm). */
export interface ApiKey {
  key: string;
  /** Shown in the access log and metrics instead of the key. */
  name: string;
  /** The account that owns the key (quota file keys); its limits cap all of its keys together. */
  account?: string;
  limits?: Limits;
  /** Features this key may not use. */
  deny?: readonly Feature[];
}

/** The caller of an open server (no keys configured): quotas still apply, to everyone together. */
export const ANONYMOUS: ApiKey = { key: '', name: 'anonymous' };

export const API_KEYS_ENV = 'LLMKIT_API_KEYS';

/**
 * Keys from --api-key (repeatable), --api-keys-file and $LLMKIT_API_KEYS (comma-separated).
 * The file has one key a line, optionally with `name=`, `rpm=` and `tpm=`; `#` starts a comment:
 *   sk-team-a-3f9c  name=team-a  rpm=60  tpm=20000
 */
export function loadApiKeys(opts: { keys?: string[]; file?: string; env?: string }): ApiKey[] {
  const keys: ApiKey[] = [];
  const add = (key: string, name?: string) => keys.push({ key, name: name ?? `key-${keys.length + 1}` });
  for (const k of opts.keys ?? []) add(k);
  for (const k of (opts.env ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean))
    add(k);
  if (opts.file) {
    if (!existsSync(opts.file)) throw new UsageError(`--api-keys-file ${opts.file} does not exist`);
    readFileSync(opts.file, 'utf8')
      .split('\n')
      .forEach((raw, i) => {
        const [key, ...fields] = raw.replace(/#.*/, '').trim().split(/\s+/).filter(Boolean);
        if (!key) return;
        const entry: ApiKey = { key, name: `key-${keys.length + 1}` };
        for (const field of fields) {
          const [k, v] = field.split('=');
          if (k === 'name' && v) entry.name = v;
          else if ((k === 'rpm' || k === 'tpm') && Number.isInteger(Number(v)) && Number(v) > 0) entry.limits = { ...entry.limits, [k]: Number(v) };
          else throw new UsageError(`--api-keys-file ${opts.file} line ${i + 1}: cannot read "${field}"`, 'write KEY [name=NAME] [rpm=N] [tpm=N]');
        }
        keys.push(entry);
      });
  }
  return keys;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Checks `Authorization: Bearer <key>`: 401 when keys are configured and the request has none of them. */
export class Authenticator {
  private readonly keys: { digest: Buffer; key: ApiKey }[];

  constructor(keys: ApiKey[]) {
    this.keys = keys.map((key) => ({ digest: digest(key.key), key }));
  }

  /** Every configured key (GET /v1/usage for an admin key lists them). */
  get apiKeys(): ApiKey[] {
    return this.keys.map((k) => k.key);
  }

  get enabled(): boolean {
    return this.keys.length > 0;
  }

  /** `authorization` is the header; `queryKey` the `api_key` of a WebSocket URL (browsers cannot set headers there). */
  authenticate(authorization: string | undefined, queryKey?: string | null): ApiKey {
    if (!this.enabled) return ANONYMOUS;
    const given = authorization?.match(/^Bearer\s+(.+)$/i)?.[1].trim() ?? queryKey ?? undefined;
    if (!given) throw new ApiError(401, 'You did not provide an API key: pass it as `Authorization: Bearer <key>`', 'missing_api_key');
    const d = digest(given);
    // Compare digests in constant time, and every key, so timing says nothing about which one nearly matched.
    let found: ApiKey | undefined;
    for (const k of this.keys) if (timingSafeEqual(k.digest, d)) found ??= k.key;
    if (!found) throw new ApiError(401, 'Incorrect API key provided', 'invalid_api_key');
    return found;
  }
}

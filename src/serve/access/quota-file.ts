import { existsSync, readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { UsageError } from '../../shared/errors.js';
import type { ApiKey } from './auth.js';
import { FEATURES, type Feature } from './features.js';
import { LimitsSchema, type Limits } from './limits.js';

/**
 * The `--quota-file` (YAML, or JSON, which is YAML too), validated at start with the line of each mistake:
 *
 *   defaults: { rpm: 60 }                 # every key, unless its own entry says otherwise
 *   accounts:
 *     acme:
 *       limits: { rpm: 100, tpm: 50000, tpd: 2000000 }   # all of acme's keys together
 *       keys:
 *         - { name: acme-web, key: sk-acme-web-1234, limits: { rpm: 10 } }
 *         - { name: acme-batch, key: sk-acme-batch-5678, deny: [stream] }
 *   models:                               # every caller together
 *     qwen: { tpm: 100000 }               # all versions of qwen
 *     qwen@2: { rpm: 30 }                 # only that version
 *   features:                             # every caller together
 *     websocket: { rpm: 20 }
 *     long_context: { rpm: 5 }            # prompts over long_context_tokens
 *     batch: { tpm: 20000 }               # lines of batch jobs (/v1/batches); `deny: [batch]` refuses creating them
 *   long_context_tokens: 1024
 *   admin_keys: [acme-web]                # names of keys whose GET /v1/usage shows every key and account
 */

const count = z.number().int().positive();

const NAME = z.string().regex(/^[A-Za-z0-9._:/@-]+$/, 'names use letters, digits and . _ : / @ -');
const deny = z.array(z.enum(FEATURES)).optional();
const KeySchema = z.strictObject({ name: NAME, key: z.string().min(8, 'keys are at least 8 characters'), limits: LimitsSchema.optional(), deny });
const AccountSchema = z.strictObject({ limits: LimitsSchema.optional(), deny, keys: z.array(KeySchema).min(1) });
const QuotaFileSchema = z.strictObject({
  defaults: LimitsSchema.optional(),
  accounts: z.record(NAME, AccountSchema).optional(),
  models: z.record(NAME, LimitsSchema).optional(),
  features: z.partialRecord(z.enum(FEATURES), LimitsSchema).optional(),
  long_context_tokens: count.optional(),
  admin_keys: z.array(NAME).optional(),
});

/** What the quota enforcer applies; keys come out separately, for the authenticator. */
export interface QuotaPolicy {
  /** Each key's own limits when its entry has none (keys files and --rpm/--tpm fill this too). */
  defaults: Limits;
  accounts: Map<string, { limits: Limits; deny: Feature[] }>;
  models: Map<string, Limits>;
  features: Map<Feature, Limits>;
  /** Prompts longer than this are the `long_context` feature. */
  longContextTokens: number;
  /** Key names whose GET /v1/usage covers everyone. */
  adminKeys: Set<string>;
}

export const DEFAULT_LONG_CONTEXT_TOKENS = 2048;

export function emptyPolicy(defaults: Limits = {}): QuotaPolicy {
  return { defaults, accounts: new Map(), models: new Map(), features: new Map(), longContextTokens: DEFAULT_LONG_CONTEXT_TOKENS, adminKeys: new Set() };
}

export function loadQuotaFile(path: string): { policy: QuotaPolicy; keys: ApiKey[] } {
  if (!existsSync(path)) throw new UsageError(`--quota-file ${path} does not exist`, 'pass a YAML or JSON quota file (see docs/serve.md)');
  const lines = new LineCounter();
  const doc = parseDocument(readFileSync(path, 'utf8'), { lineCounter: lines, uniqueKeys: true });
  const at = (offset: number | undefined) => (offset === undefined ? '' : `:${lines.linePos(offset).line}`);
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new UsageError(`--quota-file ${path}${at(e.pos[0])}: ${e.message.split('\n')[0]}`, 'fix the YAML (JSON works too)');
  }
  const parsed = QuotaFileSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    // The deepest node of the path that exists in the document gives the line.
    let path_ = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
    let node = doc.getIn(path_, true) as { range?: [number, number, number] } | undefined;
    while (!node?.range && path_.length) node = doc.getIn((path_ = path_.slice(0, -1)), true) as typeof node;
    const where = issue.path.length ? ` at ${issue.path.join('.')}` : '';
    throw new UsageError(`--quota-file ${path}${at(node?.range?.[0])}${where}: ${issue.message}`, 'see the quota file format in docs/serve.md');
  }
  const file = parsed.data;
  const policy = emptyPolicy(file.defaults ?? {});
  policy.longContextTokens = file.long_context_tokens ?? DEFAULT_LONG_CONTEXT_TOKENS;
  const keys: ApiKey[] = [];
  const seen = (what: string, value: string, list: string[]) => {
    if (list.includes(value)) throw new UsageError(`--quota-file ${path}: ${what} ${what === 'key' ? 'of ' + keys[list.indexOf(value)].name : value} appears twice`, `each ${what} must be unique`);
    list.push(value);
  };
  const names: string[] = [];
  const secrets: string[] = [];
  for (const [account, entry] of Object.entries(file.accounts ?? {})) {
    policy.accounts.set(account, { limits: entry.limits ?? {}, deny: entry.deny ?? [] });
    for (const k of entry.keys) {
      seen('key name', k.name, names);
      seen('key', k.key, secrets);
      keys.push({ key: k.key, name: k.name, account, limits: k.limits, deny: k.deny });
    }
  }
  for (const [model, limits] of Object.entries(file.models ?? {})) policy.models.set(model, limits);
  for (const [feature, limits] of Object.entries(file.features ?? {})) policy.features.set(feature as Feature, limits!);
  for (const admin of file.admin_keys ?? []) {
    if (!names.includes(admin)) throw new UsageError(`--quota-file ${path}: admin_keys names ${admin}, which is not a key of any account`, `use one of: ${names.join(', ') || '(no keys)'}`);
    policy.adminKeys.add(admin);
  }
  return { policy, keys };
}

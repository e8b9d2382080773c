import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** A Hugging Face model id, `org/name` with an optional `@revision`, as opposed to a path (which exists, or has more slashes). */
export function isHfModelId(ref: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[\w.-]+(@[\w.-]+)?$/.test(ref) && !existsSync(ref) && !ref.startsWith('.');
}

/** The hub cache huggingface_hub uses: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function hfHubCache(): string {
  return process.env.HF_HUB_CACHE || process.env.HUGGINGFACE_HUB_CACHE || join(process.env.HF_HOME || join(homedir(), '.cache', 'huggingface'), 'hub');
}

export function splitRevision(id: string): { repo: string; revision: string } {
  const [repo, revision = 'main'] = id.split('@');
  return { repo, revision };
}

/**
 * The snapshot folder of `org/name[@revision]` in the hub cache (models--org--name/snapshots/<commit>, the commit read
 * from refs/<revision> or given), or null when it is not there.
 */
export function cachedSnapshot(id: string, cache = hfHubCache()): string | null {
  const { repo, revision } = splitRevision(id);
  const root = join(cache, `models--${repo.replace('/', '--')}`);
  const ref = join(root, 'refs', revision);
  const commit = existsSync(ref) ? readFileSync(ref, 'utf8').trim() : /^[0-9a-f]{40}$/.test(revision) ? revision : null;
  const snapshot = commit ? join(root, 'snapshots', commit) : null;
  return snapshot && existsSync(snapshot) ? snapshot : null;
}

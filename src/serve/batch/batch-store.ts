import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../shared/atomic.js';
import { ApiError } from '../openai/errors.js';
import type { BatchObject } from './objects.js';

/** A record file as JSON; undefined for one that cannot be read (written by hand, or by another version), which is left alone. */
export function readRecord<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** A batch as kept on disk: OpenAI's object, its owner, and the ids its output and error files will have. */
export interface BatchRecord {
  batch: BatchObject;
  /** The API key (by name) that created it; its lines run as that key. */
  owner: string;
  outputFileId: string;
  errorFileId: string;
  /** Creation time in ms: orders batches made within one second (created_at has seconds). */
  createdMs: number;
  /** Set when it starts finalizing: the state it ends in. */
  final?: 'completed' | 'cancelled' | 'expired';
}

/**
 * Batches on disk: `<dir>/<id>.json` (the record, rewritten whole under a temporary name and renamed) and
 * `<dir>/<id>/` (the output and error logs while it runs). Writes of one record are queued, so an older state
 * never lands after a newer one.
 */
export class BatchStore {
  private readonly records = new Map<string, BatchRecord>();
  private writes = new Map<string, Promise<void>>();

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    for (const name of readdirSync(dir)) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const record = readRecord<BatchRecord>(join(dir, name));
      if (record) this.records.set(record.batch.id, record);
    }
  }

  /** Where a running batch's logs are. */
  batchDir(id: string): string {
    return join(this.dir, id);
  }

  logPath(id: string, which: 'output' | 'errors'): string {
    return join(this.batchDir(id), `${which}.jsonl`);
  }

  all(): BatchRecord[] {
    return [...this.records.values()].sort((a, b) => a.createdMs - b.createdMs);
  }

  get(id: string, owner?: string): BatchRecord {
    const record = this.records.get(id);
    if (!record || (owner !== undefined && record.owner !== owner)) throw new ApiError(404, `No batch found with id '${id}'.`, 'batch_not_found', 'batch_id');
    return record;
  }

  /** Writes the record as it is now; resolves once it is on disk. */
  save(record: BatchRecord): Promise<void> {
    this.records.set(record.batch.id, record);
    const text = JSON.stringify(record);
    const id = record.batch.id;
    const write = (this.writes.get(id) ?? Promise.resolve()).then(() => writeFileAtomic(join(this.dir, `${id}.json`), text));
    this.writes.set(id, write);
    return write;
  }
}

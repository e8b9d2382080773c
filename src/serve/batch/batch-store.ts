import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
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
 * `<dir>/<id>/` (the output and error logs while it runs). Several servers may share the folder: each reads the
 * records from disk, except those of the batches it runs itself (`open`), whose newest state is in memory and
 * reaches the disk at most a moment later. Writes of one record are queued, so an older state never lands after a
 * newer one. A cancel asked of a server that does not run the batch is a marker file, `<id>.cancel`, which the server
 * running it acts on (see BatchRunner).
 */
export class BatchStore {
  /** The batches this server runs: their records as they are now. */
  private readonly live = new Map<string, BatchRecord>();
  private writes = new Map<string, Promise<void>>();

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  /** Where a running batch's logs are. */
  batchDir(id: string): string {
    return join(this.dir, id);
  }

  logPath(id: string, which: 'output' | 'errors'): string {
    return join(this.batchDir(id), `${which}.jsonl`);
  }

  cancelPath(id: string): string {
    return join(this.dir, `${id}.cancel`);
  }

  all(): BatchRecord[] {
    const records: BatchRecord[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const record = this.read(name.slice(0, -'.json'.length));
      if (record) records.push(record);
    }
    return records.sort((a, b) => a.createdMs - b.createdMs);
  }

  get(id: string, owner?: string): BatchRecord {
    const record = this.read(id);
    if (!record || (owner !== undefined && record.owner !== owner)) throw new ApiError(404, `No batch found with id '${id}'.`, 'batch_not_found', 'batch_id');
    return record;
  }

  /** Takes a batch this server is to run (it holds its lease): its record fresh from disk, kept in memory from now on. */
  open(id: string): BatchRecord {
    this.live.delete(id);
    const record = this.get(id);
    this.live.set(id, record);
    return record;
  }

  /** Leaves a batch to the disk (and other servers) again. */
  close(id: string): void {
    this.live.delete(id);
  }

  /** Writes the record as it is now; resolves once it is on disk. */
  save(record: BatchRecord): Promise<void> {
    const text = JSON.stringify(record);
    const id = record.batch.id;
    const write = (this.writes.get(id) ?? Promise.resolve()).then(() => writeFileAtomic(join(this.dir, `${id}.json`), text));
    this.writes.set(id, write);
    return write;
  }

  /** A record as this server knows it: its own copy of a batch it runs, else the file (a cancel asked elsewhere shows). */
  private read(id: string): BatchRecord | undefined {
    const live = this.live.get(id);
    if (live) return live;
    const record = readRecord<BatchRecord>(join(this.dir, `${id}.json`));
    if (record && (record.batch.status === 'validating' || record.batch.status === 'in_progress') && existsSync(this.cancelPath(id))) {
      record.batch.status = 'cancelling';
      record.batch.cancelling_at = readRecord<number>(this.cancelPath(id)) ?? null;
    }
    return record;
  }
}

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../shared/atomic.js';
import { ApiError } from '../openai/errors.js';
import { readRecord } from './batch-store.js';
import { newId, nowSeconds, type FileObject } from './objects.js';

/** A stored file's description on disk: OpenAI's file object and the API key (by name) that owns it. */
interface FileRecord {
  file: FileObject;
  owner: string;
  /** Orders files made within one second. */
  createdMs: number;
}

/**
 * `/v1/files` on disk: `<dir>/<id>.data` holds the bytes and `<id>.json` the file object, each written under a
 * temporary name and renamed, the data first, so a listed file always has its bytes. Each API key sees its own files.
 * Nothing is kept in memory: servers that share the folder see each other's files.
 */
export class FileStore {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  dataPath(id: string): string {
    return join(this.dir, `${id}.data`);
  }

  async create(owner: string, filename: string, purpose: string, data: Uint8Array): Promise<FileObject> {
    const id = newId('file-');
    await writeFileAtomic(this.dataPath(id), data);
    return this.describe(owner, id, filename, purpose);
  }

  /** Makes a file of bytes already in place at `dataPath(id)` (a batch's output, moved there when it finalizes). */
  async adopt(owner: string, id: string, filename: string, from: string): Promise<FileObject> {
    const known = this.record(id);
    if (known) return known.file;
    if (existsSync(from)) renameSync(from, this.dataPath(id));
    return this.describe(owner, id, filename, 'batch_output');
  }

  has(id: string): boolean {
    return this.record(id) !== undefined;
  }

  get(owner: string, id: string): FileObject {
    const record = this.record(id);
    if (!record || record.owner !== owner) throw new ApiError(404, `No such File object: ${id}`, 'file_not_found', 'file_id');
    return record.file;
  }

  read(owner: string, id: string): Buffer {
    this.get(owner, id);
    return readFileSync(this.dataPath(id));
  }

  list(owner: string, filter: { purpose?: string }): FileObject[] {
    return readdirSync(this.dir)
      .filter((name) => name.endsWith('.json') && !name.startsWith('.'))
      .flatMap((name) => this.record(name.slice(0, -'.json'.length)) ?? [])
      .filter((r) => r.owner === owner && (!filter.purpose || r.file.purpose === filter.purpose))
      .sort((a, b) => a.createdMs - b.createdMs)
      .map((r) => r.file);
  }

  delete(owner: string, id: string): void {
    this.get(owner, id);
    rmSync(join(this.dir, `${id}.json`), { force: true });
    rmSync(this.dataPath(id), { force: true });
  }

  /** A file's record, if it and its bytes are on disk. */
  private record(id: string): FileRecord | undefined {
    const record = readRecord<FileRecord>(join(this.dir, `${id}.json`));
    return record && existsSync(this.dataPath(id)) ? record : undefined;
  }

  private async describe(owner: string, id: string, filename: string, purpose: string): Promise<FileObject> {
    const file: FileObject = {
      id,
      object: 'file',
      bytes: statSync(this.dataPath(id)).size,
      created_at: nowSeconds(),
      filename,
      purpose,
      status: 'processed',
      status_details: null,
      expires_at: null,
    };
    const record: FileRecord = { file, owner, createdMs: Date.now() };
    await writeFileAtomic(join(this.dir, `${id}.json`), JSON.stringify(record));
    return file;
  }
}

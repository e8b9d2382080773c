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
 */
export class FileStore {
  private readonly records = new Map<string, FileRecord>();

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    for (const name of readdirSync(dir)) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const record = readRecord<FileRecord>(join(dir, name));
      if (record && existsSync(this.dataPath(record.file.id))) this.records.set(record.file.id, record);
    }
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
    if (this.records.has(id)) return this.records.get(id)!.file;
    if (existsSync(from)) renameSync(from, this.dataPath(id));
    return this.describe(owner, id, filename, 'batch_output');
  }

  has(id: string): boolean {
    return this.records.has(id);
  }

  get(owner: string, id: string): FileObject {
    const record = this.records.get(id);
    if (!record || record.owner !== owner) throw new ApiError(404, `No such File object: ${id}`, 'file_not_found', 'file_id');
    return record.file;
  }

  read(owner: string, id: string): Buffer {
    this.get(owner, id);
    return readFileSync(this.dataPath(id));
  }

  list(owner: string, filter: { purpose?: string }): FileObject[] {
    return [...this.records.values()]
      .filter((r) => r.owner === owner && (!filter.purpose || r.file.purpose === filter.purpose))
      .sort((a, b) => a.createdMs - b.createdMs)
      .map((r) => r.file);
  }

  delete(owner: string, id: string): void {
    this.get(owner, id);
    rmSync(join(this.dir, `${id}.json`), { force: true });
    rmSync(this.dataPath(id), { force: true });
    this.records.delete(id);
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
    this.records.set(id, record);
    return file;
  }
}

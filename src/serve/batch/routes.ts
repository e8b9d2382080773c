import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiKey } from '../access/auth.js';
import { readJson, sendJson } from '../http-io.js';
import { ApiError, invalidParam } from '../openai/errors.js';
import { parseRequest } from '../openai/schemas.js';
import type { BatchRunner } from './batch-runner.js';
import type { BatchStore } from './batch-store.js';
import type { FileStore } from './file-store.js';
import { CreateBatchSchema, type BatchObject, type FileObject } from './objects.js';

export interface BatchApiDeps {
  files: FileStore;
  batches: BatchStore;
  runner: BatchRunner;
  /** Uploads above this are refused (413). */
  maxFileBytes: number;
  /** Throws (403) when the key may not use the `batch` feature. */
  allowBatch(key: ApiKey): void;
}

/** The multipart framing around an upload: a few hundred bytes, allowed on top of the file itself. */
const MULTIPART_SLACK_BYTES = 64 * 1024;

/**
 * `/v1/files` (upload, list, retrieve, content, delete) and `/v1/batches` (create, retrieve, list, cancel) in
 * OpenAI's shapes. Each API key sees the files and batches it made.
 */
export class BatchApi {
  constructor(private readonly deps: BatchApiDeps) {}

  static handles(pathname: string): boolean {
    return /^\/v1\/(files|batches)(\/|$)/.test(pathname);
  }

  async route(req: IncomingMessage, res: ServerResponse, url: URL, key: ApiKey): Promise<void> {
    const [, , collection, id, action, ...rest] = url.pathname.split('/');
    const method = req.method ?? 'GET';
    const is = (m: string, shape: boolean) => method === m && shape;
    const owner = key.name;
    if (rest.length) throw notFound(method, url);
    if (collection === 'files') {
      const { files } = this.deps;
      if (is('POST', !id)) return sendJson(res, 200, await this.upload(req, owner));
      if (is('GET', !id)) {
        const mine = files.list(owner, { purpose: url.searchParams.get('purpose') ?? undefined });
        return sendJson(res, 200, page(url.searchParams.get('order') === 'asc' ? mine : mine.reverse(), url, 10_000));
      }
      if (is('GET', !!id && !action)) return sendJson(res, 200, files.get(owner, id));
      if (is('DELETE', !!id && !action)) return sendJson(res, 200, this.deleteFile(owner, id));
      if (is('GET', !!id && action === 'content')) {
        const data = files.read(owner, id);
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': data.length });
        return void res.end(data);
      }
    } else {
      const { batches, runner } = this.deps;
      if (is('POST', !id)) {
        this.deps.allowBatch(key);
        return sendJson(res, 200, await runner.create(owner, parseRequest(CreateBatchSchema, await readJson(req))));
      }
      if (is('GET', !id)) {
        const mine = batches
          .all()
          .filter((r) => r.owner === owner)
          .map((r) => r.batch);
        return sendJson(res, 200, page(mine.reverse(), url, 20));
      }
      if (is('GET', !!id && !action)) return sendJson(res, 200, batches.get(id, owner).batch);
      if (is('POST', !!id && action === 'cancel')) return sendJson(res, 200, await runner.cancel(owner, id));
    }
    throw notFound(method, url);
  }

  private async upload(req: IncomingMessage, owner: string): Promise<FileObject> {
    const type = req.headers['content-type'] ?? '';
    if (!type.startsWith('multipart/form-data')) throw new ApiError(400, "Upload files as multipart/form-data with the fields 'file' and 'purpose'.", 'invalid_content_type');
    const body = await readLimited(req, this.deps.maxFileBytes + MULTIPART_SLACK_BYTES, this.deps.maxFileBytes);
    let form: FormData;
    try {
      form = await new Response(body, { headers: { 'Content-Type': type } }).formData();
    } catch {
      throw new ApiError(400, 'The multipart/form-data body could not be read.', 'invalid_multipart');
    }
    const purpose = form.get('purpose');
    const file = form.get('file');
    if (typeof purpose !== 'string') throw invalidParam('purpose', "Missing required parameter: 'purpose'.", 'missing_required_parameter');
    if (purpose !== 'batch') throw invalidParam('purpose', `This server keeps files for batches only: purpose must be 'batch' (got '${purpose}').`);
    if (!(file instanceof Blob)) throw invalidParam('file', "Missing required parameter: 'file' (the JSONL file).", 'missing_required_parameter');
    if (file.size > this.deps.maxFileBytes) throw tooLarge(this.deps.maxFileBytes);
    const name = (file as File).name || 'upload.jsonl';
    return this.deps.files.create(owner, name, purpose, new Uint8Array(await file.arrayBuffer()));
  }

  private deleteFile(owner: string, id: string): object {
    const busy = this.deps.batches.all().find((r) => r.owner === owner && r.batch.input_file_id === id && ['validating', 'in_progress', 'cancelling'].includes(r.batch.status));
    if (busy) throw new ApiError(400, `File ${id} is the input of batch ${busy.batch.id}, which is still running: cancel it or wait for it to finish.`, 'file_in_use', 'file_id');
    this.deps.files.delete(owner, id);
    return { id, object: 'file', deleted: true };
  }
}

/** Reads the whole body; past `limit` it reads on (so the client hears the answer) but keeps nothing, and refuses. */
async function readLimited(req: IncomingMessage, limit: number, fileLimit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size <= limit) chunks.push(chunk as Buffer);
  }
  if (size > limit) throw tooLarge(fileLimit);
  return Buffer.concat(chunks);
}

function tooLarge(limit: number): ApiError {
  return new ApiError(413, `File is too large: this server takes files of at most ${Math.round(limit / 2 ** 20)} MB (--batch-file-mb). Split the batch into several files.`, 'file_too_large', 'file');
}

function notFound(method: string, url: URL): ApiError {
  return new ApiError(404, `Unknown request URL: ${method} ${url.pathname}`, 'unknown_url');
}

/** OpenAI's cursor pages: `after` an id, at most `limit`, with `has_more`. */
function page<T extends FileObject | BatchObject>(items: T[], url: URL, defaultLimit: number): object {
  const limit = Math.min(Math.max(Number(url.searchParams.get('limit') ?? defaultLimit) || defaultLimit, 1), Math.max(defaultLimit, 100));
  const after = url.searchParams.get('after');
  const start = after ? items.findIndex((i) => i.id === after) + 1 : 0;
  const data = items.slice(start, start + limit);
  return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: start + limit < items.length };
}

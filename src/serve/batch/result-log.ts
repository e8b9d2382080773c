import { closeSync, existsSync, fdatasyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ResultLine } from './objects.js';

/**
 * An append-only JSONL file of finished requests, the record of what a batch has done. A line is appended (one
 * write, then fdatasync) only once its request has finished, and opening the log again after a crash drops a torn
 * last line (no newline: the process died inside the write) and reads back which custom_ids are done. So a batch
 * resumed after SIGKILL skips exactly the lines on disk and runs the rest: no line twice, none lost; the request
 * that was running when the process died runs again, and only its finished run is written.
 */
export class ResultLog {
  private constructor(
    readonly path: string,
    private fd: number | undefined,
    /** custom_id → its result line, for what is already in the file. */
    readonly done: Map<string, ResultLine>,
  ) {}

  static open(path: string): ResultLog {
    mkdirSync(dirname(path), { recursive: true });
    const { results, bytes, torn } = readResults(path);
    if (torn) {
      const fd = openSync(path, 'r+');
      ftruncateSync(fd, bytes);
      closeSync(fd);
    }
    return new ResultLog(path, openSync(path, 'a'), new Map(results.map((r) => [r.custom_id, r])));
  }

  get count(): number {
    return this.done.size;
  }

  append(result: ResultLine): void {
    if (this.fd === undefined) throw new Error(`result log ${this.path} is closed`);
    if (this.done.has(result.custom_id)) return;
    writeSync(this.fd, JSON.stringify(result) + '\n');
    fdatasyncSync(this.fd);
    this.done.set(result.custom_id, result);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** The whole lines of a result file (none if it does not exist), how many bytes they take, and whether a torn line follows. */
export function readResults(path: string): { results: ResultLine[]; bytes: number; torn: boolean } {
  if (!existsSync(path)) return { results: [], bytes: 0, torn: false };
  const data = readFileSync(path);
  const whole = data.lastIndexOf(0x0a) + 1;
  const results = data
    .subarray(0, whole)
    .toString('utf8')
    .split('\n')
    .filter((line) => line)
    .map((line) => JSON.parse(line) as ResultLine);
  return { results, bytes: whole, torn: whole < data.length };
}

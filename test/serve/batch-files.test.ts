import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readInputFile } from '../../src/serve/batch/input-file.js';
import { ResultLog } from '../../src/serve/batch/result-log.js';
import { tempDir } from '../helpers/cli.js';

const line = (id: string, extra: Record<string, unknown> = {}) => JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/completions', body: { model: 'm', prompt: 'x' }, ...extra });
const known = (model: string) => (model === 'm' ? undefined : `The model '${model}' does not exist`);

describe('batch input files', () => {
  it('reads good lines and reports each bad one with its line number, as OpenAI does', () => {
    const text = [
      line('a'),
      '',
      'not json',
      line('a'),
      line('b', { url: '/v1/embeddings' }),
      line('c', { body: { model: 'gpt-4o', prompt: 'x' } }),
      line('d', { body: [] }),
      line('e', { body: { model: 'm', stream: true } }),
      '{"method": "POST"}',
    ].join('\n');
    const { lines, errors } = readInputFile(text, { endpoint: '/v1/completions', modelProblem: known });
    expect(lines.map((l) => [l.line, l.custom_id])).toEqual([[1, 'a']]);
    expect(errors.map((e) => [e.line, e.code, e.param])).toEqual([
      [3, 'invalid_json_line', null],
      [4, 'duplicate_custom_id', 'custom_id'],
      [5, 'invalid_url', 'url'],
      [6, 'model_not_found', 'body.model'],
      [7, 'missing_required_parameter', 'body'],
      [8, 'invalid_value', 'body.stream'],
      [9, 'missing_required_parameter', 'custom_id'],
    ]);
  });

  it('takes either endpoint offline (no batch endpoint), and refuses an empty file', () => {
    const text = [line('a'), line('b', { url: '/v1/chat/completions', body: { model: 'm', messages: [] } })].join('\n');
    expect(readInputFile(text, { modelProblem: known }).errors).toEqual([]);
    expect(readInputFile('\n\n', { modelProblem: known }).errors.map((e) => e.code)).toEqual(['empty_file']);
  });
});

describe('the result log', () => {
  it('drops a torn last line on reopening and remembers the whole ones, so a resumed batch writes each line once', () => {
    const path = join(tempDir(), 'out.jsonl');
    const log = ResultLog.open(path);
    const result = (id: string) => ({ id: `batch_req_${id}`, custom_id: id, response: { status_code: 200, request_id: 'r', body: {} }, error: null });
    log.append(result('a'));
    log.append(result('b'));
    log.append(result('a'));
    log.close();
    // The process died inside a write.
    appendFileSync(path, '{"id": "batch_req_c", "custom_id": "c", "resp');
    const again = ResultLog.open(path);
    expect([...again.done.keys()]).toEqual(['a', 'b']);
    again.append(result('c'));
    again.close();
    const lines = readFileSync(path, 'utf8').split('\n');
    expect(lines.filter(Boolean).map((l) => JSON.parse(l).custom_id)).toEqual(['a', 'b', 'c']);
    writeFileSync(path, '');
    expect(ResultLog.open(path).count).toBe(0);
  });
});

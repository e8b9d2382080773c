import { describe, expect, it } from 'vitest';
import type { GenerationEnd } from '../../src/engine/streamer.js';
import type { ApiError } from '../../src/serve/openai/errors.js';
import { OutputValidator } from '../../src/serve/output-validation.js';
import type { PreparedRequest } from '../../src/serve/prepared-request.js';

const SCHEMA = { type: 'object', properties: { r: { type: 'number', minimum: 0, maximum: 5 }, name: { type: 'string', maxLength: 4 } }, required: ['r', 'name'] };
const stop: GenerationEnd = { reason: 'stop', promptTokens: 3, completionTokens: 9, interTokenMs: [] };
const length: GenerationEnd = { ...stop, reason: 'length' };

/** The parts of a prepared request the validator reads (a constrained one: one constraint per choice). */
function request(extra: Partial<PreparedRequest>): PreparedRequest {
  return { constraints: [{} as never], native: {} as never, ...extra } as PreparedRequest;
}

function failure(f: () => void): ApiError | undefined {
  try {
    f();
  } catch (e) {
    return e as ApiError;
  }
}

describe('constrained outputs are validated before they are returned', () => {
  const validator = new OutputValidator();
  const schema = request({ native: { format: { type: 'json_schema', schema: SCHEMA, strict: true } } as never });

  it('passes valid answers, and refuses invalid ones with a 500 invalid_output naming what failed', () => {
    expect(failure(() => validator.check(schema, ['{"r": 2.5, "name": "Oka"}'], [stop]))).toBeUndefined();
    const range = failure(() => validator.check(schema, ['{"r": 5.3, "name": "Oka"}'], [stop]))!;
    expect([range.status, range.code]).toEqual([500, 'invalid_output']);
    expect(range.message).toBe('the constrained output of choice 0 did not validate: /r must be <= 5 (a server bug: please report it with the request)');
    // Three U+FFFD from three bytes the grammar counted as one character: four characters over maxLength 4 here.
    expect(failure(() => validator.check(schema, ['{"r": 1, "name": "a\uFFFD\uFFFD\uFFFD\uFFFD"}'], [stop]))!.message).toContain('/name must NOT have more than 4 characters');
    expect(failure(() => validator.check(schema, ['{"r": 5, "s": 2)5}'], [stop]))!.message).toMatch(/did not validate: not JSON/);
    // The second choice is named.
    expect(failure(() => validator.check(schema, ['{"r": 1, "name": "a"}', '{"r": 9, "name": "a"}'], [stop, stop]))!.message).toContain('choice 1');
  });

  it('returns answers cut by max_tokens as they are, and leaves unconstrained requests alone', () => {
    expect(failure(() => validator.check(schema, ['{"r": 1, "na'], [length]))).toBeUndefined();
    expect(failure(() => validator.check(request({ constraints: [] }), ['not json'], [stop]))).toBeUndefined();
  });

  it('checks JSON mode for an object and a forced call’s arguments against its function', () => {
    const json = request({ native: { format: { type: 'json_object' } } as never });
    expect(failure(() => validator.check(json, ['{"a": [1]}'], [stop]))).toBeUndefined();
    expect(failure(() => validator.check(json, ['[1, 2]'], [stop]))!.message).toContain('/ must be object');
    const tools = request({
      tools: { format: 'llama3_json', specs: [{ type: 'function', function: { name: 'f', parameters: SCHEMA } }], choice: 'required' },
    });
    expect(failure(() => validator.check(tools, ['{"name": "f", "parameters": {"r": 1, "name": "x"}}'], [stop]))).toBeUndefined();
    expect(failure(() => validator.check(tools, ['{"name": "f", "parameters": {"r": 7, "name": "x"}}'], [stop]))!.message).toContain("f's arguments: /r must be <= 5");
  });
});

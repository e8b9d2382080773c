import { BATCH_ENDPOINTS, MAX_BATCH_LINES, type BatchEndpoint, type BatchLine, type LineError } from './objects.js';

/** A batch's errors list stops here: a file with a systematic mistake would repeat it on every line. */
const MAX_REPORTED_ERRORS = 100;

export interface InputChecks {
  /** Every line's url must be this one (a server batch); otherwise any of BATCH_ENDPOINTS (offline). */
  endpoint?: BatchEndpoint;
  /** Says why `model` cannot be served (undefined when it can). */
  modelProblem(model: string): string | undefined;
}

/**
 * Reads a batch input file (one JSON request a line: `custom_id`, `method`, `url`, `body`) and checks every line as
 * OpenAI does when a batch is validated: each problem is reported with its line number, and one bad line fails the
 * whole batch before any request runs. Blank lines are skipped.
 */
export function readInputFile(text: string, checks: InputChecks): { lines: BatchLine[]; errors: LineError[] } {
  const lines: BatchLine[] = [];
  const errors: LineError[] = [];
  const seen = new Set<string>();
  const rows = text.split('\n');
  rows.forEach((raw, i) => {
    if (!raw.trim() || errors.length >= MAX_REPORTED_ERRORS) return;
    const line = i + 1;
    const problem = checkLine(raw, line, checks, seen);
    if ('code' in problem) errors.push(problem);
    else lines.push(problem);
  });
  if (lines.length + errors.length > MAX_BATCH_LINES) {
    errors.unshift({
      code: 'too_many_requests',
      message: `A batch holds at most ${MAX_BATCH_LINES} requests; this file has ${lines.length + errors.length}. Split it into several batches.`,
      param: null,
      line: null,
    });
  }
  if (!lines.length && !errors.length) errors.push({ code: 'empty_file', message: 'The input file has no requests: write one JSON request a line.', param: null, line: null });
  return { lines, errors };
}

function checkLine(raw: string, line: number, checks: InputChecks, seen: Set<string>): BatchLine | LineError {
  const fail = (code: string, message: string, param: string | null = null): LineError => ({ code, message, param, line });
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return fail('invalid_json_line', 'This line is not parseable as valid JSON.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return fail('invalid_request', 'Each line must be a JSON object with custom_id, method, url and body.');
  const { custom_id: customId, method, url, body } = parsed as Record<string, unknown>;
  if (typeof customId !== 'string' || !customId) return fail('missing_required_parameter', "Missing required parameter: 'custom_id' (a non-empty string).", 'custom_id');
  if (seen.has(customId)) {
    return fail('duplicate_custom_id', `The custom_id '${customId}' is a duplicate of another request. The custom_id parameter must be unique for each request in a batch.`, 'custom_id');
  }
  seen.add(customId);
  if (method !== 'POST') return fail('invalid_method', `The method must be 'POST' (got ${JSON.stringify(method ?? null)}).`, 'method');
  const expected = checks.endpoint ? [checks.endpoint] : BATCH_ENDPOINTS;
  if (!expected.includes(url as BatchEndpoint)) {
    return fail(
      'invalid_url',
      checks.endpoint
        ? `The URL provided for this request does not match the batch endpoint: got ${JSON.stringify(url ?? null)}, the batch was created for ${checks.endpoint}.`
        : `The URL must be one of ${BATCH_ENDPOINTS.join(', ')} (got ${JSON.stringify(url ?? null)}).`,
      'url',
    );
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return fail('missing_required_parameter', "Missing required parameter: 'body' (the request, a JSON object).", 'body');
  const { model, stream } = body as Record<string, unknown>;
  if (typeof model !== 'string' || !model) return fail('missing_required_parameter', "Missing required parameter: 'body.model'.", 'body.model');
  const unknown = checks.modelProblem(model);
  if (unknown) return fail('model_not_found', unknown, 'body.model');
  if (stream === true) return fail('invalid_value', 'Streaming is not available in a batch: leave body.stream out.', 'body.stream');
  return { line, custom_id: customId, url: url as BatchEndpoint, body: body as Record<string, unknown> };
}

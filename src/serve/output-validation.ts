import { Ajv, type ValidateFunction } from 'ajv';
import type { GenerationEnd } from '../engine/streamer.js';
import { ApiError } from './openai/errors.js';
import { parseToolCalls } from './openai/tools.js';
import type { PreparedRequest } from './prepared-request.js';

/** Compiled validators kept (least recently used out first). */
const CACHED_VALIDATORS = 256;

/**
 * The last check of a constrained output before it leaves: the grammar is meant to make every output valid, and
 * this proves it for each one with a JSON Schema validator (ajv). An answer that ended by a stop token must parse
 * and validate: JSON mode as an object, a json_schema answer against its schema, a forced tool call's arguments
 * against the function's parameters. One that does not is a 500 `invalid_output` naming what failed, never a
 * 200 with output that breaks the client's parser. Answers cut by max_tokens (`length`) are returned as they
 * are, as OpenAI does.
 */
export class OutputValidator {
  private readonly ajv = new Ajv({ strict: false, allErrors: false, validateSchema: false, validateFormats: false, logger: false });
  private readonly validators = new Map<string, ValidateFunction | undefined>();

  /** Throws ApiError (500 invalid_output) for the first choice whose output does not validate. */
  check(request: PreparedRequest, texts: readonly string[], ends: readonly GenerationEnd[]): void {
    if (!request.constraints.some(Boolean)) return;
    texts.forEach((text, i) => {
      if (ends[i].reason !== 'stop') return;
      const problem = this.problem(request, text);
      if (problem) throw new ApiError(500, `the constrained output of choice ${i} did not validate: ${problem} (a server bug: please report it with the request)`, 'invalid_output');
    });
  }

  private problem({ native, tools }: PreparedRequest, text: string): string | undefined {
    if (tools && (tools.choice === 'required' || typeof tools.choice === 'object')) {
      const { calls } = parseToolCalls(tools.format, text, tools.specs);
      if (!calls.length) return 'no tool call in the reply';
      for (const call of calls) {
        const spec = tools.specs.find((t) => t.function.name === call.function.name);
        const issue = this.against(spec?.function.parameters ?? {}, call.function.arguments);
        if (issue) return `${call.function.name}'s arguments: ${issue}`;
      }
      return undefined;
    }
    if (native.format?.type === 'json_object') return this.against({ type: 'object' }, text);
    if (native.format?.type === 'json_schema') return this.against(native.format.schema, text);
    return undefined;
  }

  /** What is wrong with `text` under `schema`, or undefined. */
  private against(schema: unknown, text: string): string | undefined {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      return `not JSON (${(e as Error).message})`;
    }
    const validate = this.validator(schema);
    if (!validate || validate(value)) return undefined;
    const [error] = validate.errors ?? [];
    return error ? `${error.instancePath || '/'} ${error.message}` : 'invalid';
  }

  /** The schema's validator; undefined when ajv cannot compile a schema the grammar engine took (then only JSON is checked). */
  private validator(schema: unknown): ValidateFunction | undefined {
    const key = JSON.stringify(schema);
    if (this.validators.has(key)) {
      const found = this.validators.get(key);
      this.validators.delete(key);
      this.validators.set(key, found);
      return found;
    }
    let validate: ValidateFunction | undefined;
    try {
      validate = this.ajv.compile(schema as object);
    } catch {
      validate = undefined;
    }
    this.validators.set(key, validate);
    if (this.validators.size > CACHED_VALIDATORS) this.validators.delete(this.validators.keys().next().value!);
    return validate;
  }
}

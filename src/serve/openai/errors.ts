/** OpenAI's error types, by HTTP status. */
const TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'invalid_request_error',
  405: 'invalid_request_error',
  413: 'invalid_request_error',
  429: 'rate_limit_error',
  500: 'server_error',
  503: 'server_error',
};

/** An error a client sees, in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Extra response headers (Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: TYPES[this.status] ?? 'server_error', param: this.param, code: this.code } };
  }
}

export function invalidParam(param: string, message: string, code = 'invalid_value'): ApiError {
  return new ApiError(400, message, code, param);
}

/** Any error as an ApiError: ours pass through, anything else is a 500. */
export function toApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`, 'internal_error');
}

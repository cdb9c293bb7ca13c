/**
 * Coded errors of the scorer. Each code maps to the HTTP status the proxy sends when
 * the route's fail mode does not override it.
 *
 * | code | status | when |
 * | --- | --- | --- |
 * | `WG_SCORER_INVALID_OPTION` | 500 | a scorer or store option is missing or invalid (raised at start-up) |
 * | `WG_SCORER_INVALID_INPUT` | 400 | a request field the scorer reads (ip, path, time) is malformed |
 * | `WG_SCORER_STORE_UNAVAILABLE` | 503 | the baseline store failed or timed out; apply the route's fail mode |
 * | `WG_SCORER_STORE_REPLY_INVALID` | 500 | the baseline store returned a reply of the wrong shape |
 * | `WG_SCORER_MODEL_NOT_FOUND` | 500 | the model file cannot be read |
 * | `WG_SCORER_MODEL_INVALID` | 500 | the model file is not a decodable ONNX model with Wardgate metadata |
 * | `WG_SCORER_MODEL_SCHEMA_MISMATCH` | 500 | the model's feature list differs from `FEATURE_SCHEMA` |
 * | `WG_SCORER_INFERENCE_FAILED` | 500 | onnxruntime failed or returned a non-finite risk |
 */
export type ScorerErrorCode =
  | 'WG_SCORER_INVALID_OPTION'
  | 'WG_SCORER_INVALID_INPUT'
  | 'WG_SCORER_STORE_UNAVAILABLE'
  | 'WG_SCORER_STORE_REPLY_INVALID'
  | 'WG_SCORER_MODEL_NOT_FOUND'
  | 'WG_SCORER_MODEL_INVALID'
  | 'WG_SCORER_MODEL_SCHEMA_MISMATCH'
  | 'WG_SCORER_INFERENCE_FAILED';

const STATUS_BY_CODE: Readonly<Record<ScorerErrorCode, number>> = Object.freeze({
  WG_SCORER_INVALID_OPTION: 500,
  WG_SCORER_INVALID_INPUT: 400,
  WG_SCORER_STORE_UNAVAILABLE: 503,
  WG_SCORER_STORE_REPLY_INVALID: 500,
  WG_SCORER_MODEL_NOT_FOUND: 500,
  WG_SCORER_MODEL_INVALID: 500,
  WG_SCORER_MODEL_SCHEMA_MISMATCH: 500,
  WG_SCORER_INFERENCE_FAILED: 500,
});

/** An error raised by the scorer, with a stable code, an HTTP status and optional structured detail. */
export class ScorerError extends Error {
  readonly code: ScorerErrorCode;
  readonly status: number;
  readonly detail: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: ScorerErrorCode,
    message: string,
    options: { cause?: unknown; detail?: Record<string, unknown> } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'ScorerError';
    this.code = code;
    this.status = STATUS_BY_CODE[code];
    this.detail = options.detail === undefined ? undefined : Object.freeze({ ...options.detail });
  }
}

/** Returns whether `error` is a scorer error, optionally with the given code. */
export function isScorerError(error: unknown, code?: ScorerErrorCode): error is ScorerError {
  return error instanceof ScorerError && (code === undefined || error.code === code);
}

/**
 * Coded errors of the identity layer. Each code has one HTTP status, listed in
 * {@link IDENTITY_ERROR_STATUS}, so the pipeline can respond without a table of its own.
 */
export type IdentityErrorCode =
  | 'WG_AUTH_INVALID_OPTION'
  | 'WG_AUTH_DISCOVERY_FAILED'
  | 'WG_AUTH_ISSUER_MISMATCH'
  | 'WG_AUTH_INVALID_HOST'
  | 'WG_AUTH_INVALID_RETURN_TO'
  | 'WG_AUTH_INVALID_CALLBACK'
  | 'WG_AUTH_STATE_UNKNOWN'
  | 'WG_AUTH_BROWSER_MISMATCH'
  | 'WG_AUTH_IDP_ERROR'
  | 'WG_AUTH_TOKEN_EXCHANGE_FAILED'
  | 'WG_AUTH_ID_TOKEN_INVALID'
  | 'WG_AUTH_NONCE_MISMATCH'
  | 'WG_AUTH_STEP_UP_FAILED'
  | 'WG_AUTH_STEP_UP_REQUIRED'
  | 'WG_AUTH_CSRF_REJECTED'
  | 'WG_AUTH_METHOD_NOT_ALLOWED'
  | 'WG_AUTH_TOKEN_MISSING'
  | 'WG_AUTH_TOKEN_INVALID'
  | 'WG_AUTH_TOKEN_EXPIRED'
  | 'WG_AUTH_STORE_UNAVAILABLE'
  | 'WG_AUTH_INSUFFICIENT_SCOPE'
  | 'WG_AUTH_JWKS_UNAVAILABLE'
  | 'WG_AUTH_CERTIFICATE_INVALID'
  | 'WG_AUTH_SAVED_REQUEST_TOO_LARGE'
  | 'WG_AUTH_SAVED_REQUEST_UNKNOWN'
  | 'WG_AUTH_LOGOUT_TOKEN_INVALID'
  | 'WG_AUTH_HANDOFF_INVALID'
  | 'WG_AUTH_IDP_UNAVAILABLE';

export const IDENTITY_ERROR_STATUS: Readonly<Record<IdentityErrorCode, number>> = Object.freeze({
  WG_AUTH_INVALID_OPTION: 500,
  WG_AUTH_DISCOVERY_FAILED: 502,
  WG_AUTH_ISSUER_MISMATCH: 502,
  WG_AUTH_INVALID_HOST: 400,
  WG_AUTH_INVALID_RETURN_TO: 400,
  WG_AUTH_INVALID_CALLBACK: 400,
  WG_AUTH_STATE_UNKNOWN: 403,
  WG_AUTH_BROWSER_MISMATCH: 403,
  WG_AUTH_IDP_ERROR: 403,
  WG_AUTH_TOKEN_EXCHANGE_FAILED: 502,
  WG_AUTH_ID_TOKEN_INVALID: 403,
  WG_AUTH_NONCE_MISMATCH: 403,
  WG_AUTH_STEP_UP_FAILED: 403,
  WG_AUTH_STEP_UP_REQUIRED: 401,
  WG_AUTH_CSRF_REJECTED: 403,
  WG_AUTH_METHOD_NOT_ALLOWED: 405,
  WG_AUTH_TOKEN_MISSING: 401,
  WG_AUTH_TOKEN_INVALID: 401,
  WG_AUTH_TOKEN_EXPIRED: 401,
  WG_AUTH_STORE_UNAVAILABLE: 503,
  WG_AUTH_INSUFFICIENT_SCOPE: 403,
  WG_AUTH_JWKS_UNAVAILABLE: 502,
  WG_AUTH_CERTIFICATE_INVALID: 403,
  WG_AUTH_SAVED_REQUEST_TOO_LARGE: 413,
  WG_AUTH_SAVED_REQUEST_UNKNOWN: 403,
  WG_AUTH_LOGOUT_TOKEN_INVALID: 400,
  WG_AUTH_HANDOFF_INVALID: 403,
  WG_AUTH_IDP_UNAVAILABLE: 503,
});

/** An identity failure with a stable `code` and the HTTP `status` it maps to. */
export class IdentityError extends Error {
  readonly code: IdentityErrorCode;
  readonly status: number;

  constructor(code: IdentityErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'IdentityError';
    this.code = code;
    this.status = IDENTITY_ERROR_STATUS[code];
  }
}

/** Throws `WG_AUTH_INVALID_OPTION` naming the option, what it must be and what was received. */
export function invalidOption(option: string, expected: string, received: unknown): never {
  throw new IdentityError('WG_AUTH_INVALID_OPTION', `Option "${option}" must be ${expected}, received ${describe(received)}. Fix the identity configuration and restart.`);
}

/** Describes a received value for an error message without dumping secrets or long strings. */
export function describe(value: unknown): string {
  if (typeof value === 'string') {
    return value.length > 80 ? `a string of ${value.length} characters` : JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return `an array of ${value.length}`;
  }
  if (value === null) {
    return 'null';
  }

  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

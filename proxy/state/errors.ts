export type StateErrorCode = 'WG_STATE_INVALID_OPTION' | 'WG_STATE_UNAVAILABLE';

/** A coded error from the key-value store; `status` is the HTTP status a request failing on it maps to. */
export class StateError extends Error {
  readonly code: StateErrorCode;
  readonly status: number;

  constructor(code: StateErrorCode, status: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StateError';
    this.code = code;
    this.status = status;
  }
}

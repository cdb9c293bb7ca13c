/** Coded errors of the development certificate tooling (`certs/`). */

export type CertsErrorCode =
  | 'WG_CERTS_INVALID_OPTION'
  | 'WG_CERTS_INVALID_HOSTNAME'
  | 'WG_CERTS_WRITE_FAILED'
  | 'WG_CERTS_INVALID_CA';

/** A failure to create, read or write development certificates. */
export class CertsError extends Error {
  readonly code: CertsErrorCode;

  constructor(code: CertsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CertsError';
    this.code = code;
  }
}

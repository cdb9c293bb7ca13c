/** Coded errors of the TLS listener (`proxy/tls/`). */

export type TlsErrorCode =
  /** The first bytes of a connection are not a TLS handshake record. */
  | 'WG_TLS_NOT_TLS'
  /** The ClientHello is structurally invalid (bad lengths, duplicate extensions or key shares). */
  | 'WG_TLS_MALFORMED_CLIENT_HELLO'
  /** The ClientHello is larger than the listener accepts. */
  | 'WG_TLS_CLIENT_HELLO_TOO_LARGE'
  /** The client sent no complete ClientHello before the deadline. */
  | 'WG_TLS_CLIENT_HELLO_TIMEOUT'
  /** The connection ended before the ClientHello was complete. */
  | 'WG_TLS_CLIENT_HELLO_TRUNCATED'
  /** A listener option is invalid; raised at start-up. */
  | 'WG_TLS_INVALID_OPTION';

/** A failure on a TLS connection before the handshake, or an invalid listener option. */
export class TlsError extends Error {
  readonly code: TlsErrorCode;

  constructor(code: TlsErrorCode, message: string) {
    super(message);
    this.name = 'TlsError';
    this.code = code;
  }
}

/** Coded errors of request hygiene (`proxy/http/`): each maps to an HTTP status. */

export type HttpErrorCode =
  /** The request target is not origin-form (or `*` for OPTIONS). */
  | 'WG_HTTP_BAD_TARGET'
  /** The path contains an encoded slash, backslash, NUL, control character or invalid escape. */
  | 'WG_HTTP_BAD_PATH'
  /** Content-Length and Transfer-Encoding together, or a duplicate or invalid Content-Length. */
  | 'WG_HTTP_AMBIGUOUS_FRAMING'
  /** More than one Host header, or a missing one. */
  | 'WG_HTTP_BAD_HOST'
  /** A header line folded onto the next line (obs-fold, RFC 9112 section 5.2). */
  | 'WG_HTTP_OBS_FOLD'
  /** TRACE, TRACK or CONNECT: methods that echo requests or open tunnels past the policy. */
  | 'WG_HTTP_METHOD_NOT_ALLOWED'
  /** A header such as X-HTTP-Method-Override, which requests another method than the one the policy evaluates. */
  | 'WG_HTTP_METHOD_OVERRIDE';

const STATUS_BY_CODE: Readonly<Record<HttpErrorCode, number>> = Object.freeze({
  WG_HTTP_BAD_TARGET: 400,
  WG_HTTP_BAD_PATH: 400,
  WG_HTTP_AMBIGUOUS_FRAMING: 400,
  WG_HTTP_BAD_HOST: 400,
  WG_HTTP_OBS_FOLD: 400,
  WG_HTTP_METHOD_NOT_ALLOWED: 405,
  WG_HTTP_METHOD_OVERRIDE: 400,
});

/** A request rejected before routing; `status` is the HTTP status of the error response. */
export class HttpError extends Error {
  readonly code: HttpErrorCode;
  readonly status: number;

  constructor(code: HttpErrorCode, message: string) {
    super(message);
    this.name = 'HttpError';
    this.code = code;
    this.status = STATUS_BY_CODE[code];
  }
}

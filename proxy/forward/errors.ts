/** Coded errors of forwarding to upstreams (`proxy/forward/`). */

export type ForwardErrorCode =
  /** The upstream refused, reset, timed out or closed the connection. The HTTP status is 502. */
  | 'WG_UPSTREAM_UNAVAILABLE'
  /** A forwarder option is invalid; raised at start-up. */
  | 'WG_FORWARD_INVALID_OPTION';

/** A failure to reach an upstream, carrying the route id and the original error as `cause`. */
export class ForwardError extends Error {
  readonly code: ForwardErrorCode;
  readonly status: number;
  readonly routeId: string | undefined;

  constructor(code: ForwardErrorCode, message: string, options: { routeId?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'ForwardError';
    this.code = code;
    this.status = code === 'WG_UPSTREAM_UNAVAILABLE' ? 502 : 500;
    this.routeId = options.routeId;
  }
}

/** Coded errors of route configuration (`proxy/routing/`). */

export type RoutingErrorCode =
  /** A route in the configuration is invalid; raised at start-up or on reload. */
  | 'WG_ROUTING_INVALID_ROUTE';

/** An invalid route configuration, naming the route and the field. */
export class RoutingError extends Error {
  readonly code: RoutingErrorCode;
  /** Configuration path of the invalid value, such as `routes[2].upstream`. */
  readonly option: string;

  constructor(code: RoutingErrorCode, option: string, message: string) {
    super(message);
    this.name = 'RoutingError';
    this.code = code;
    this.option = option;
  }
}

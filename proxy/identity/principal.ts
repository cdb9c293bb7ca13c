/**
 * The authenticated caller of one request, whichever way it authenticated.
 * Policy, scorer, telemetry and the upstream identity assertion all read this shape.
 */
export interface Principal {
  /** Stable subject identifier (`sub` claim, or the certificate SAN for devices). */
  readonly subject: string;
  readonly email?: string;
  readonly name?: string;
  readonly groups: readonly string[];
  /** Authentication context class reference of the current authentication, if known. */
  readonly acr?: string;
  readonly amr?: readonly string[];
  /** Time of the last authentication, in seconds since the epoch (OIDC `auth_time`). */
  readonly auth_time?: number;
  readonly method: 'session' | 'bearer' | 'mtls';
  /** Device identifier from a client certificate or a device cookie, when one is known. */
  readonly device?: string;
  /** OAuth scopes granted to a bearer token (`scope` or `scp` claim); absent for other methods. */
  readonly scopes?: readonly string[];
  /** Opaque session id for `method: 'session'`; never logged. */
  readonly sessionId?: string;
  /** When the browser session signed in, in milliseconds since the epoch (`method: 'session'`). */
  readonly sessionStartedAt?: number;
}

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

/** Maximum length of a subject identifier in characters, as OpenID Connect Core 1.0 section 2 sets for `sub`. */
export const MAX_SUBJECT_LENGTH = 255;

const CONTROL_CHARACTER = /\p{Cc}/u;

/**
 * Checks a token's `sub` claim before it becomes a {@link Principal.subject}, which policy,
 * logs and the upstream assertion carry. Returns a description of what is wrong, or
 * `undefined` when `sub` is a non-empty string of at most {@link MAX_SUBJECT_LENGTH}
 * characters without control characters.
 */
export function subjectProblem(sub: unknown): string | undefined {
  if (typeof sub !== 'string') return `is not a string`;
  if (sub === '') return 'is empty';
  if (sub.length > MAX_SUBJECT_LENGTH && [...sub].length > MAX_SUBJECT_LENGTH) return `is longer than ${MAX_SUBJECT_LENGTH} characters`;
  if (CONTROL_CHARACTER.test(sub)) return 'contains a control character';
  return undefined;
}

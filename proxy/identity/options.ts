import type { KeyValueStore } from '../state/key-value-store.ts';
import { invalidOption } from './errors.ts';
import { MAX_SAVED_BODY_LIMIT_BYTES } from './saved-request.ts';

/** Signature algorithms accepted by default for ID tokens and bearer tokens; `none` and HS* are never accepted. */
export const DEFAULT_ALGORITHMS: readonly string[] = Object.freeze(['RS256', 'PS256', 'ES256', 'EdDSA']);

/** Asymmetric JWS algorithms an operator may allow; `none` and HS* are never among them. */
export const ACCEPTABLE_ALGORITHMS: ReadonlySet<string> = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']);

export interface OidcOptions {
  /** Issuer URL; discovery reads `<issuer>/.well-known/openid-configuration` and requires the same `issuer` in it. */
  readonly issuer: string;
  readonly client_id: string;
  readonly client_secret: string;
  /** Scopes requested at sign-in; default `openid email profile groups`. */
  readonly scopes?: readonly string[];
  /** PEM bundle trusted for TLS to the IdP in place of the system roots. */
  readonly ca?: string;
  /** ID token signature algorithms accepted; default {@link DEFAULT_ALGORITHMS}. */
  readonly algorithms?: readonly string[];
  /** Clock skew tolerated on `exp`, `iat` and `auth_time`, in seconds; default 30. */
  readonly clock_skew_s?: number;
}

export interface SessionOptions {
  /** A session unused for this many seconds ends. */
  readonly idle_timeout_s: number;
  /** A session ends this many seconds after sign-in, however active. */
  readonly absolute_lifetime_s: number;
  /**
   * Claims (groups, email, name) are read again from the IdP's userinfo endpoint when they are
   * older than this many seconds; unset means they stay as they were at sign-in.
   */
  readonly claims_refresh_interval_s?: number;
}

/** Requests kept across a step-up (a POST that needed a stronger sign-in). */
export interface SavedRequestOptions {
  /** Largest body kept, in bytes; default 65536 (64 KiB). */
  readonly max_body_bytes?: number;
  /** 32-byte AES-256-GCM key; default a random key per process, so replays work only on the instance that saved them. */
  readonly key?: Buffer;
}

/** One sign-in shared by several host names. */
export interface SharedSignInOptions {
  /** Host name (without port) whose session the other hosts borrow; it must be in `hosts`. */
  readonly sign_in_host: string;
  /** Host names (without port) that share the sign-in; a hand-off is only ever sent to one of these. */
  readonly hosts: readonly string[];
}

export interface BearerIssuerOptions {
  readonly issuer: string;
  /** Required `aud` value. */
  readonly audience: string;
  /** Remote JWKS URL; exactly one of `jwks_uri` and `jwks_file` is required. */
  readonly jwks_uri?: string;
  /** Path of a local JWKS file, read once at start-up. */
  readonly jwks_file?: string;
  readonly algorithms: readonly string[];
  /** PEM bundle trusted for TLS to `jwks_uri`. */
  readonly ca?: string;
  /** Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds; default 30. */
  readonly clock_skew_s?: number;
}

/** Bearer token settings: the trusted issuers and how their remote key sets are cached. */
export interface BearerOptions {
  readonly issuers: readonly BearerIssuerOptions[];
  /** Minimum time between two JWKS fetches caused by an unknown `kid`, in seconds; default 60. */
  readonly jwks_cooldown_s?: number;
  /** Age after which a cached remote JWKS is fetched again, in seconds; default 3600. */
  readonly jwks_max_age_s?: number;
}

export interface IdentityOptions {
  readonly oidc: OidcOptions;
  readonly session: SessionOptions;
  readonly store: KeyValueStore;
  readonly bearer?: BearerOptions;
  readonly saved_requests?: SavedRequestOptions;
  readonly shared_sign_in?: SharedSignInOptions;
  /** Clock in milliseconds since the epoch; default `Date.now`. */
  readonly now?: () => number;
  /**
   * Tells whether a Host (lowercased, without port) may be used in the OIDC `redirect_uri`.
   * Without it every syntactically valid Host is used.
   */
  readonly isSignInHost?: (host: string) => boolean;
  /** Receives errors of background work that no request would report, such as a failed re-check of open WebSockets. */
  readonly onBackgroundError?: (error: unknown) => void;
}

/** Validates identity options and throws `WG_AUTH_INVALID_OPTION` naming the first bad one. */
export function assertIdentityOptions(options: IdentityOptions): void {
  if (typeof options !== 'object' || options === null) {
    invalidOption('identity', 'an object', options);
  }

  const { oidc, session, store, bearer } = options;
  if (typeof oidc !== 'object' || oidc === null) {
    invalidOption('oidc', 'an object', oidc);
  }
  assertHttpsUrl('oidc.issuer', oidc.issuer);
  assertNonEmptyString('oidc.client_id', oidc.client_id);
  assertNonEmptyString('oidc.client_secret', oidc.client_secret);
  if (oidc.scopes !== undefined && (!Array.isArray(oidc.scopes) || !oidc.scopes.includes('openid') || !oidc.scopes.every((s) => typeof s === 'string' && /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s)))) {
    invalidOption('oidc.scopes', 'an array of scope tokens that includes "openid"', oidc.scopes);
  }
  if (oidc.ca !== undefined) {
    assertPem('oidc.ca', oidc.ca);
  }
  if (oidc.algorithms !== undefined) {
    assertAlgorithms('oidc.algorithms', oidc.algorithms);
  }
  if (oidc.clock_skew_s !== undefined && !(Number.isInteger(oidc.clock_skew_s) && oidc.clock_skew_s >= 0 && oidc.clock_skew_s <= 300)) {
    invalidOption('oidc.clock_skew_s', 'an integer number of seconds from 0 to 300', oidc.clock_skew_s);
  }

  if (typeof session !== 'object' || session === null) {
    invalidOption('session', 'an object', session);
  }
  assertPositiveInteger('session.idle_timeout_s', session.idle_timeout_s);
  assertPositiveInteger('session.absolute_lifetime_s', session.absolute_lifetime_s);
  if (session.idle_timeout_s > session.absolute_lifetime_s) {
    invalidOption('session.idle_timeout_s', `at most session.absolute_lifetime_s (${session.absolute_lifetime_s})`, session.idle_timeout_s);
  }

  if (session.claims_refresh_interval_s !== undefined) {
    assertPositiveInteger('session.claims_refresh_interval_s', session.claims_refresh_interval_s);
  }

  const { saved_requests: savedRequests, shared_sign_in: shared } = options;
  if (savedRequests?.max_body_bytes !== undefined && !(Number.isSafeInteger(savedRequests.max_body_bytes) && savedRequests.max_body_bytes >= 0 && savedRequests.max_body_bytes <= MAX_SAVED_BODY_LIMIT_BYTES)) {
    invalidOption('saved_requests.max_body_bytes', `an integer number of bytes from 0 to ${MAX_SAVED_BODY_LIMIT_BYTES}`, savedRequests.max_body_bytes);
  }
  if (savedRequests?.key !== undefined && !(Buffer.isBuffer(savedRequests.key) && savedRequests.key.length === 32)) {
    invalidOption('saved_requests.key', 'a 32-byte key (64 hexadecimal characters)', Buffer.isBuffer(savedRequests.key) ? `${savedRequests.key.length} bytes` : savedRequests.key);
  }
  if (shared !== undefined) {
    const hostPattern = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])$/;
    if (!Array.isArray(shared.hosts) || shared.hosts.length < 2 || !shared.hosts.every((host) => typeof host === 'string' && hostPattern.test(host))) {
      invalidOption('shared_sign_in.hosts', 'a list of at least two lowercase host names without port', shared.hosts);
    }
    if (!shared.hosts.includes(shared.sign_in_host)) {
      invalidOption('shared_sign_in.sign_in_host', `one of shared_sign_in.hosts (${shared.hosts.join(', ')})`, shared.sign_in_host);
    }
  }

  if (typeof store?.get !== 'function' || typeof store.take !== 'function' || typeof store.touch !== 'function') {
    invalidOption('store', 'a KeyValueStore', store);
  }

  if (bearer !== undefined) {
    if (!Array.isArray(bearer?.issuers)) {
      invalidOption('bearer.issuers', 'an array', bearer?.issuers);
    }
    const seen = new Set<string>();
    bearer.issuers.forEach((entry, i) => {
      const path = `bearer.issuers[${i}]`;
      assertHttpsUrl(`${path}.issuer`, entry?.issuer);
      if (seen.has(entry.issuer)) {
        invalidOption(`${path}.issuer`, 'an issuer not listed twice', entry.issuer);
      }
      seen.add(entry.issuer);
      assertNonEmptyString(`${path}.audience`, entry.audience);
      assertAlgorithms(`${path}.algorithms`, entry.algorithms);
      if ((entry.jwks_uri === undefined) === (entry.jwks_file === undefined)) {
        invalidOption(`${path}.jwks_uri`, 'set, or jwks_file set, but not both', entry.jwks_uri);
      }
      if (entry.jwks_uri !== undefined) {
        assertHttpsUrl(`${path}.jwks_uri`, entry.jwks_uri);
      }
      if (entry.jwks_file !== undefined) {
        assertNonEmptyString(`${path}.jwks_file`, entry.jwks_file);
      }
      if (entry.ca !== undefined) {
        assertPem(`${path}.ca`, entry.ca);
      }
      if (entry.clock_skew_s !== undefined && !(Number.isInteger(entry.clock_skew_s) && entry.clock_skew_s >= 0 && entry.clock_skew_s <= 300)) {
        invalidOption(`${path}.clock_skew_s`, 'an integer number of seconds from 0 to 300', entry.clock_skew_s);
      }
    });
    if (bearer.jwks_cooldown_s !== undefined && !(Number.isInteger(bearer.jwks_cooldown_s) && bearer.jwks_cooldown_s >= 0 && bearer.jwks_cooldown_s <= 86_400)) {
      invalidOption('bearer.jwks_cooldown_s', 'an integer number of seconds from 0 to 86400', bearer.jwks_cooldown_s);
    }
    if (bearer.jwks_max_age_s !== undefined && !(Number.isInteger(bearer.jwks_max_age_s) && bearer.jwks_max_age_s >= 1 && bearer.jwks_max_age_s <= 7 * 86_400)) {
      invalidOption('bearer.jwks_max_age_s', 'an integer number of seconds from 1 to 604800', bearer.jwks_max_age_s);
    }
  }
}

function assertNonEmptyString(option: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value === '') {
    invalidOption(option, 'a non-empty string', value);
  }
}

function assertPositiveInteger(option: string, value: unknown): void {
  if (!Number.isSafeInteger(value) || (value as number) <= 0) {
    invalidOption(option, 'a positive integer number of seconds', value);
  }
}

function assertHttpsUrl(option: string, value: unknown): void {
  assertNonEmptyString(option, value);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    invalidOption(option, 'an absolute https URL', value);
  }
  const loopbackHttp = url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if ((url.protocol !== 'https:' && !loopbackHttp) || url.search !== '' || url.hash !== '' || url.username !== '') {
    invalidOption(option, 'an https URL without query, fragment or credentials (http only for loopback)', value);
  }
}

function assertPem(option: string, value: unknown): void {
  if (typeof value !== 'string' || !value.includes('-----BEGIN CERTIFICATE-----')) {
    invalidOption(option, 'a PEM string with at least one CERTIFICATE block', value);
  }
}

function assertAlgorithms(option: string, value: unknown): void {
  if (!Array.isArray(value) || value.length === 0 || !value.every((alg) => ACCEPTABLE_ALGORITHMS.has(alg))) {
    invalidOption(option, `a non-empty array of asymmetric JWS algorithms (${[...ACCEPTABLE_ALGORITHMS].join(', ')}); "none" and HS* are not accepted`, value);
  }
}

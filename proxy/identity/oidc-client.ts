import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';

import { describe, IdentityError } from './errors.ts';
import { createHttpsFetch, type HttpsFetch } from './https-fetch.ts';
import { DEFAULT_ALGORITHMS, type OidcOptions } from './options.ts';
import { MAX_SUBJECT_LENGTH, subjectProblem } from './principal.ts';

/** The parts of the OpenID Provider metadata that the relying party uses. */
export interface ProviderMetadata {
  readonly issuer: string;
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
  readonly jwks_uri: string;
  /** RP-initiated logout endpoint (OpenID Connect RP-Initiated Logout 1.0), when the IdP offers one. */
  readonly end_session_endpoint?: string;
  readonly userinfo_endpoint?: string;
}

/** The tokens of a successful token response that the relying party keeps. */
export interface TokenSet {
  readonly id_token: string;
  readonly access_token?: string;
}

/** Claims read from the userinfo endpoint that can change during a session. */
export interface UserinfoClaims {
  readonly sub: string;
  readonly email?: string;
  readonly name?: string;
  readonly groups?: string[];
}

/** Verified claims of a back-channel logout token. */
export interface LogoutTokenClaims {
  readonly jti: string;
  readonly iat: number;
  readonly sub?: string;
  readonly sid?: string;
}

/** Event key that a logout token must carry (OpenID Connect Back-Channel Logout 1.0 section 2.4). */
const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
/** Logout tokens issued longer ago than this are rejected, which bounds how long their `jti` must be remembered. */
export const MAX_LOGOUT_TOKEN_AGE_S = 300;

/** The authorization request parameters that vary per login attempt. */
export interface AuthorizationRequest {
  readonly redirect_uri: string;
  readonly state: string;
  readonly nonce: string;
  readonly code_challenge: string;
  readonly acr_values?: string;
  readonly max_age?: number;
}

/** Verified ID token claims used to build a session. */
export interface IdTokenClaims extends JWTPayload {
  readonly sub: string;
  readonly nonce?: string;
  readonly acr?: string;
  readonly amr?: string[];
  readonly auth_time?: number;
  readonly email?: string;
  readonly name?: string;
  readonly groups?: string[];
  /** The IdP's session id, used to match back-channel logout tokens. */
  readonly sid?: string;
}

/**
 * An OpenID Connect relying party for the authorization code flow with PKCE
 * (OpenID Connect Core 1.0 section 3.1, RFC 7636), with client_secret_basic at the token endpoint.
 */
export class OidcClient {
  readonly metadata: ProviderMetadata;
  readonly #options: OidcOptions;
  readonly #fetch: HttpsFetch;
  readonly #jwks: ReturnType<typeof createRemoteJWKSet>;

  private constructor(options: OidcOptions, metadata: ProviderMetadata, fetch: HttpsFetch) {
    this.#options = options;
    this.metadata = Object.freeze(metadata);
    this.#fetch = fetch;
    this.#jwks = createRemoteJWKSet(new URL(metadata.jwks_uri), { [customFetch]: fetch });
  }

  /**
   * Reads the provider metadata from `<issuer>/.well-known/openid-configuration`.
   * Throws `WG_AUTH_DISCOVERY_FAILED` when it cannot be read and `WG_AUTH_ISSUER_MISMATCH`
   * when its `issuer` differs from the configured one (OpenID Connect Discovery 1.0 section 4.3).
   */
  static async discover(options: OidcOptions): Promise<OidcClient> {
    const fetch = createHttpsFetch(options.ca);
    const url = `${options.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;

    let document: Record<string, unknown>;
    try {
      const response = await fetch(url, { headers: { accept: 'application/json' } });
      if (response.status !== 200) {
        throw new Error(`HTTP status ${response.status}`);
      }
      document = await response.json() as Record<string, unknown>;
    } catch (cause) {
      throw new IdentityError('WG_AUTH_DISCOVERY_FAILED', `OpenID Provider discovery at ${url} failed: ${(cause as Error).message}. Check option "oidc.issuer", that the IdP is running, and "oidc.ca" for a private CA.`, { cause });
    }

    if (document.issuer !== options.issuer) {
      throw new IdentityError('WG_AUTH_ISSUER_MISMATCH', `Discovery document at ${url} has issuer ${describe(document.issuer)}, expected exactly ${JSON.stringify(options.issuer)}. Set option "oidc.issuer" to the IdP's issuer.`);
    }
    for (const field of ['authorization_endpoint', 'token_endpoint', 'jwks_uri'] as const) {
      if (typeof document[field] !== 'string' || !URL.canParse(document[field])) {
        throw new IdentityError('WG_AUTH_DISCOVERY_FAILED', `Discovery document at ${url} has ${field} ${describe(document[field])}, expected a URL.`);
      }
    }

    return new OidcClient(options, document as unknown as ProviderMetadata, fetch);
  }

  /** Builds the URL of the authorization request that the browser is redirected to. */
  authorizationUrl(request: AuthorizationRequest): string {
    const url = new URL(this.metadata.authorization_endpoint);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', this.#options.client_id);
    url.searchParams.set('redirect_uri', request.redirect_uri);
    url.searchParams.set('scope', (this.#options.scopes ?? ['openid', 'email', 'profile', 'groups']).join(' '));
    url.searchParams.set('state', request.state);
    url.searchParams.set('nonce', request.nonce);
    url.searchParams.set('code_challenge', request.code_challenge);
    url.searchParams.set('code_challenge_method', 'S256');
    if (request.acr_values !== undefined) {
      url.searchParams.set('acr_values', request.acr_values);
    }
    if (request.max_age !== undefined) {
      url.searchParams.set('max_age', String(request.max_age));
    }

    return url.href;
  }

  /**
   * Exchanges an authorization code at the token endpoint and returns the raw ID token.
   * Throws `WG_AUTH_TOKEN_EXCHANGE_FAILED` with the IdP's `error` when it rejects the code,
   * for example on a PKCE verifier mismatch (`invalid_grant`).
   */
  async exchangeCode(code: string, redirectUri: string, codeVerifier: string): Promise<TokenSet> {
    // RFC 6749 section 2.3.1: client id and secret are form-urlencoded before Basic encoding.
    const credentials = Buffer.from(`${encodeURIComponent(this.#options.client_id)}:${encodeURIComponent(this.#options.client_secret)}`).toString('base64');
    const body = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: codeVerifier });

    let response: Response;
    let payload: Record<string, unknown>;
    try {
      response = await this.#fetch(this.metadata.token_endpoint, {
        method: 'POST',
        headers: { authorization: `Basic ${credentials}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: body.toString(),
      });
      payload = await response.json() as Record<string, unknown>;
    } catch (cause) {
      throw new IdentityError('WG_AUTH_TOKEN_EXCHANGE_FAILED', `Token request to ${this.metadata.token_endpoint} failed: ${(cause as Error).message}.`, { cause });
    }

    if (response.status !== 200) {
      throw new IdentityError('WG_AUTH_TOKEN_EXCHANGE_FAILED', `Token endpoint returned HTTP ${response.status} with error ${describe(payload.error)}: ${describe(payload.error_description)}. Sign in again.`);
    }
    if (typeof payload.id_token !== 'string') {
      throw new IdentityError('WG_AUTH_TOKEN_EXCHANGE_FAILED', `Token response has id_token ${describe(payload.id_token)}, expected a JWT. Check that scope "openid" is allowed for client ${this.#options.client_id}.`);
    }

    return {
      id_token: payload.id_token,
      ...(typeof payload.access_token === 'string' ? { access_token: payload.access_token } : {}),
    };
  }

  /**
   * Reads the current claims from the userinfo endpoint (OpenID Connect Core 1.0 section 5.3)
   * and checks that `sub` is the session's subject. Returns null when the IdP rejects the access
   * token (HTTP 401 or 403), meaning the session must sign in again. Throws
   * `WG_AUTH_IDP_UNAVAILABLE` when the IdP cannot be reached or returns anything else.
   */
  async userinfo(accessToken: string, expectedSubject: string): Promise<UserinfoClaims | null> {
    const endpoint = this.metadata.userinfo_endpoint;
    if (endpoint === undefined) {
      throw new IdentityError('WG_AUTH_IDP_UNAVAILABLE', 'The IdP publishes no userinfo_endpoint, so claims cannot be refreshed. Remove option "session.claims_refresh_interval" or use an IdP with userinfo.');
    }

    let response: Response;
    let payload: Record<string, unknown>;
    try {
      response = await this.#fetch(endpoint, { headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' } });
      if (response.status === 401 || response.status === 403) {
        return null;
      }
      payload = await response.json() as Record<string, unknown>;
    } catch (cause) {
      throw new IdentityError('WG_AUTH_IDP_UNAVAILABLE', `Userinfo request to ${endpoint} failed: ${(cause as Error).message}. Try again in a minute.`, { cause });
    }

    if (response.status !== 200) {
      throw new IdentityError('WG_AUTH_IDP_UNAVAILABLE', `Userinfo endpoint ${endpoint} returned HTTP ${response.status}, expected 200.`);
    }
    if (payload.sub !== expectedSubject) {
      throw new IdentityError('WG_AUTH_ID_TOKEN_INVALID', `Userinfo claim "sub" is ${describe(payload.sub)}, expected the session's subject ${JSON.stringify(expectedSubject)}.`);
    }
    assertOptionalType(payload, 'groups', isStringArray);
    assertEmail(payload, 'Userinfo');
    assertOptionalType(payload, 'name', (v) => typeof v === 'string');

    return payload as unknown as UserinfoClaims;
  }

  /**
   * Builds the RP-initiated logout URL (OpenID Connect RP-Initiated Logout 1.0 section 2), or
   * returns undefined when the IdP has no `end_session_endpoint`.
   */
  endSessionUrl(idTokenHint: string | undefined, postLogoutRedirectUri: string): string | undefined {
    if (this.metadata.end_session_endpoint === undefined) {
      return undefined;
    }

    const url = new URL(this.metadata.end_session_endpoint);
    if (idTokenHint !== undefined) {
      url.searchParams.set('id_token_hint', idTokenHint);
    }
    url.searchParams.set('client_id', this.#options.client_id);
    url.searchParams.set('post_logout_redirect_uri', postLogoutRedirectUri);
    return url.href;
  }

  /**
   * Verifies a logout token (OpenID Connect Back-Channel Logout 1.0 section 2.6): signature
   * against the IdP's JWKS, `iss`, `aud` = client_id, `iat` no older than
   * {@link MAX_LOGOUT_TOKEN_AGE_S}, a `jti`, the back-channel logout event, `sid` or `sub`, and
   * no `nonce`. The caller checks that the `jti` was not used before. Throws `WG_AUTH_LOGOUT_TOKEN_INVALID`.
   */
  async verifyLogoutToken(logoutToken: string, nowS: number): Promise<LogoutTokenClaims> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(logoutToken, this.#jwks, {
        issuer: this.#options.issuer,
        audience: this.#options.client_id,
        algorithms: [...(this.#options.algorithms ?? DEFAULT_ALGORITHMS)],
        clockTolerance: this.#options.clock_skew_s ?? 30,
        currentDate: new Date(nowS * 1000),
        maxTokenAge: MAX_LOGOUT_TOKEN_AGE_S,
        requiredClaims: ['iat', 'jti', 'events'],
      }));
    } catch (cause) {
      const claim = cause instanceof joseErrors.JWTClaimValidationFailed ? ` (claim "${cause.claim}")` : '';
      throw new IdentityError('WG_AUTH_LOGOUT_TOKEN_INVALID', `Logout token failed verification${claim}: ${(cause as Error).message}.`, { cause });
    }

    const events = payload.events as Record<string, unknown> | undefined;
    if (typeof events !== 'object' || events === null || typeof events[BACKCHANNEL_LOGOUT_EVENT] !== 'object' || events[BACKCHANNEL_LOGOUT_EVENT] === null) {
      throw new IdentityError('WG_AUTH_LOGOUT_TOKEN_INVALID', `Logout token claim "events" must contain the member ${JSON.stringify(BACKCHANNEL_LOGOUT_EVENT)} with a JSON object value.`);
    }
    if (payload.nonce !== undefined) {
      throw new IdentityError('WG_AUTH_LOGOUT_TOKEN_INVALID', 'Logout token contains a "nonce" claim, which is forbidden so that it cannot be used as an ID token.');
    }
    if (typeof payload.jti !== 'string' || payload.jti === '' || payload.jti.length > 256) {
      throw new IdentityError('WG_AUTH_LOGOUT_TOKEN_INVALID', `Logout token claim "jti" must be a non-empty string of at most 256 characters, received ${describe(payload.jti)}.`);
    }
    const sid = typeof payload.sid === 'string' && payload.sid !== '' ? payload.sid : undefined;
    const sub = typeof payload.sub === 'string' && payload.sub !== '' ? payload.sub : undefined;
    if (sid === undefined && sub === undefined) {
      throw new IdentityError('WG_AUTH_LOGOUT_TOKEN_INVALID', 'Logout token has neither a "sid" nor a "sub" claim, so no session can be matched.');
    }

    return { jti: payload.jti, iat: payload.iat!, ...(sid === undefined ? {} : { sid }), ...(sub === undefined ? {} : { sub }) };
  }

  /**
   * Verifies an ID token (OpenID Connect Core 1.0 section 3.1.3.7): signature against the
   * provider's JWKS with an allowed algorithm, `iss`, `aud` = client_id, `azp` when present,
   * `exp` and `iat` within the clock skew, and `nonce` equal to the one sent.
   * Throws `WG_AUTH_ID_TOKEN_INVALID` or `WG_AUTH_NONCE_MISMATCH`.
   */
  async verifyIdToken(idToken: string, expectedNonce: string, nowS: number): Promise<IdTokenClaims> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(idToken, this.#jwks, {
        issuer: this.#options.issuer,
        audience: this.#options.client_id,
        algorithms: [...(this.#options.algorithms ?? DEFAULT_ALGORITHMS)],
        clockTolerance: this.#options.clock_skew_s ?? 30,
        currentDate: new Date(nowS * 1000),
        requiredClaims: ['sub', 'iat', 'exp'],
      }));
    } catch (cause) {
      const claim = cause instanceof joseErrors.JWTClaimValidationFailed ? ` (claim "${cause.claim}")` : '';
      throw new IdentityError('WG_AUTH_ID_TOKEN_INVALID', `ID token failed verification${claim}: ${(cause as Error).message}. Sign in again.`, { cause });
    }

    const subject = subjectProblem(payload.sub);
    if (subject !== undefined) {
      throw new IdentityError('WG_AUTH_ID_TOKEN_INVALID', `ID token claim "sub" is ${describe(payload.sub)}, which ${subject}, but "sub" must be a non-empty string of at most ${MAX_SUBJECT_LENGTH} characters without control characters. Ask the IdP administrator to correct the account's subject identifier.`);
    }
    if (payload.azp !== undefined && payload.azp !== this.#options.client_id) {
      throw new IdentityError('WG_AUTH_ID_TOKEN_INVALID', `ID token claim "azp" is ${describe(payload.azp)}, expected ${JSON.stringify(this.#options.client_id)}.`);
    }
    if (payload.nonce !== expectedNonce) {
      throw new IdentityError('WG_AUTH_NONCE_MISMATCH', `ID token claim "nonce" is ${payload.nonce === undefined ? 'missing' : 'different from the one sent'}. Sign in again.`);
    }
    assertOptionalType(payload, 'acr', (v) => typeof v === 'string');
    assertOptionalType(payload, 'auth_time', (v) => Number.isSafeInteger(v));
    assertOptionalType(payload, 'amr', isStringArray);
    assertOptionalType(payload, 'groups', isStringArray);
    assertEmail(payload, 'ID token');
    assertOptionalType(payload, 'name', (v) => typeof v === 'string');
    assertOptionalType(payload, 'sid', (v) => typeof v === 'string' && v !== '' && v.length <= 256);

    return payload as IdTokenClaims;
  }
}

/** Accepts an addr-spec with exactly one "@" and no whitespace or control characters (RFC 5322 section 3.4.1, simplified). */
function isEmailAddress(value: unknown): boolean {
  return typeof value === 'string' && value.length <= 254 && /^[^@\s\u0000-\u001f\u007f]+@[^@\s\u0000-\u001f\u007f]+$/.test(value);
}

function assertEmail(payload: Record<string, unknown>, source: string): void {
  if (payload.email !== undefined && !isEmailAddress(payload.email)) {
    throw new IdentityError('WG_AUTH_ID_TOKEN_INVALID', `${source} claim "email" is ${describe(payload.email)}, expected one address with exactly one "@" and no spaces. Ask the IdP administrator to correct the account's email address.`);
  }
}

function isStringArray(value: unknown): boolean {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function assertOptionalType(payload: JWTPayload, claim: string, valid: (value: unknown) => boolean): void {
  if (payload[claim] !== undefined && !valid(payload[claim])) {
    throw new IdentityError('WG_AUTH_ID_TOKEN_INVALID', `ID token claim "${claim}" has the wrong type: received ${describe(payload[claim])}.`);
  }
}

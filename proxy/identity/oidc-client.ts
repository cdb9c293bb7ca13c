import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';

import { describe, IdentityError } from './errors.ts';
import { createHttpsFetch, type HttpsFetch } from './https-fetch.ts';
import { DEFAULT_ALGORITHMS, type OidcOptions } from './options.ts';

/** The parts of the OpenID Provider metadata that the relying party uses. */
export interface ProviderMetadata {
  readonly issuer: string;
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
  readonly jwks_uri: string;
}

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
  async exchangeCode(code: string, redirectUri: string, codeVerifier: string): Promise<string> {
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

    return payload.id_token;
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
    assertOptionalType(payload, 'email', (v) => typeof v === 'string');
    assertOptionalType(payload, 'name', (v) => typeof v === 'string');

    return payload as IdTokenClaims;
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

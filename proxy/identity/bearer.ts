import { readFile } from 'node:fs/promises';

import { createLocalJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';

import { describe, IdentityError, invalidOption } from './errors.ts';
import { createHttpsFetch } from './https-fetch.ts';
import { assertAcceptableJoseHeader } from './jose-header.ts';
import { RemoteKeySet } from './jwks-cache.ts';
import type { BearerIssuerOptions, BearerOptions } from './options.ts';
import { MAX_SUBJECT_LENGTH, subjectProblem, type Principal } from './principal.ts';

const MAX_TOKEN_LENGTH = 8 * 1024;
const DEFAULT_CLOCK_SKEW_S = 30;
const DEFAULT_JWKS_COOLDOWN_S = 60;
const DEFAULT_JWKS_MAX_AGE_S = 3600;
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

interface IssuerVerifier {
  readonly options: BearerIssuerOptions;
  /** Key resolver for a request at `nowS`; a local set ignores the time. */
  readonly keysAt: (nowS: number) => JWTVerifyGetKey;
}

/** Verifies bearer JWT access tokens (RFC 6750, RFC 9068) from configured issuers. */
export class BearerVerifier {
  readonly #issuers: ReadonlyMap<string, IssuerVerifier>;

  private constructor(issuers: Map<string, IssuerVerifier>) {
    this.#issuers = issuers;
  }

  /**
   * Loads key sets: `jwks_file` is read now (bad files fail start-up), `jwks_uri` is fetched
   * on first use and cached (see {@link RemoteKeySet}) with `cache.jwks_cooldown_s` (default 60)
   * and `cache.jwks_max_age_s` (default 3600).
   */
  static async create(issuers: readonly BearerIssuerOptions[], cache: Omit<BearerOptions, 'issuers'> = {}): Promise<BearerVerifier> {
    const verifiers = new Map<string, IssuerVerifier>();
    for (const [i, options] of issuers.entries()) {
      let keysAt: (nowS: number) => JWTVerifyGetKey;
      if (options.jwks_file !== undefined) {
        let keys: JWTVerifyGetKey;
        try {
          const jwks = JSON.parse(await readFile(options.jwks_file, 'utf8')) as JSONWebKeySet;
          keys = createLocalJWKSet(jwks);
        } catch (cause) {
          invalidOption(`bearer.issuers[${i}].jwks_file`, `a readable JWKS file (${(cause as Error).message})`, options.jwks_file);
        }
        keysAt = () => keys;
      } else {
        const remote = new RemoteKeySet({
          url: options.jwks_uri as string,
          fetch: createHttpsFetch(options.ca),
          cooldownS: cache.jwks_cooldown_s ?? DEFAULT_JWKS_COOLDOWN_S,
          maxAgeS: cache.jwks_max_age_s ?? DEFAULT_JWKS_MAX_AGE_S,
        });
        keysAt = (nowS) => remote.resolverAt(nowS);
      }
      verifiers.set(options.issuer, { options, keysAt });
    }

    return new BearerVerifier(verifiers);
  }

  /**
   * Verifies a token and returns its principal. Throws `WG_AUTH_TOKEN_EXPIRED` for an
   * expired token and `WG_AUTH_JWKS_UNAVAILABLE` when the issuer's key set cannot be fetched.
   * Throws `WG_AUTH_TOKEN_INVALID` for anything else wrong: malformed, a JWE, a header that
   * names its own key or a critical extension, or an unknown issuer. Issuers are compared
   * exactly, so a trailing slash matters. The same code covers a disallowed algorithm (always
   * including `none` and HS*), a bad signature, a wrong audience, no `exp`, and `nbf` in the
   * future beyond the issuer's clock skew.
   */
  async verify(token: string, nowS: number): Promise<Principal> {
    if (token.length > MAX_TOKEN_LENGTH) {
      throw invalidToken(`is ${token.length} characters long, more than the maximum of ${MAX_TOKEN_LENGTH}`);
    }

    assertAcceptableJoseHeader(token);

    let issuer: unknown;
    try {
      issuer = decodeJwt(token).iss;
    } catch {
      throw invalidToken('is not a JWT');
    }
    const verifier = typeof issuer === 'string' ? this.#issuers.get(issuer) : undefined;
    if (verifier === undefined) {
      throw invalidToken(`has issuer ${describe(issuer)}, which is not a configured bearer issuer${this.#nearMiss(issuer)}`);
    }

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, verifier.keysAt(nowS), {
        issuer: verifier.options.issuer,
        audience: verifier.options.audience,
        algorithms: [...verifier.options.algorithms],
        clockTolerance: verifier.options.clock_skew_s ?? DEFAULT_CLOCK_SKEW_S,
        currentDate: new Date(nowS * 1000),
        requiredClaims: ['sub', 'exp'],
        crit: {},
      }));
    } catch (cause) {
      if (cause instanceof IdentityError) {
        throw cause;
      }
      if (cause instanceof joseErrors.JWTExpired) {
        throw new IdentityError('WG_AUTH_TOKEN_EXPIRED', 'Bearer token has expired (claim "exp"). Request a new access token.', { cause });
      }
      const claim = cause instanceof joseErrors.JWTClaimValidationFailed ? ` claim "${cause.claim}"` : '';
      throw invalidToken(`failed verification${claim}: ${(cause as Error).message}`, cause);
    }

    const subject = subjectProblem(payload.sub);
    if (subject !== undefined) {
      throw invalidToken(`has claim "sub" ${describe(payload.sub)}, which ${subject}, but "sub" must be a non-empty string of at most ${MAX_SUBJECT_LENGTH} characters without control characters`);
    }
    const groups = payload.groups;
    if (groups !== undefined && !(Array.isArray(groups) && groups.every((g) => typeof g === 'string'))) {
      throw invalidToken(`has claim "groups" ${describe(groups)}, expected an array of strings`);
    }
    const scopes = readScopes(payload);

    return {
      subject: payload.sub as string,
      groups: (groups as string[] | undefined) ?? [],
      ...(typeof payload.email === 'string' ? { email: payload.email } : {}),
      ...(typeof payload.acr === 'string' ? { acr: payload.acr } : {}),
      ...(Number.isSafeInteger(payload.auth_time) ? { auth_time: payload.auth_time as number } : {}),
      ...(scopes === undefined ? {} : { scopes }),
      method: 'bearer',
    };
  }

  /** Names the configured issuer that `issuer` differs from only by a trailing slash, if any. */
  #nearMiss(issuer: unknown): string {
    if (typeof issuer !== 'string') return '';
    const trimmed = issuer.replace(/\/+$/, '');
    const match = [...this.#issuers.keys()].find((configured) => configured.replace(/\/+$/, '') === trimmed);

    return match === undefined ? '' : ` (the configured issuer is ${JSON.stringify(match)}; issuers must match exactly, including a trailing slash)`;
  }
}

/** Reads the granted scopes from `scope` (RFC 8693 / RFC 9068: space-separated) or `scp` (an array, as some IdPs send). */
function readScopes(payload: JWTPayload): string[] | undefined {
  const { scope, scp } = payload;
  if (scope !== undefined) {
    if (typeof scope !== 'string') {
      throw invalidToken(`has claim "scope" ${describe(scope)}, expected a space-separated string`);
    }
    return scope.split(' ').filter((item) => item !== '');
  }
  if (scp !== undefined) {
    const items = typeof scp === 'string' ? scp.split(' ') : scp;
    if (!Array.isArray(items) || !items.every((item) => typeof item === 'string' && SCOPE_TOKEN.test(item))) {
      throw invalidToken(`has claim "scp" ${describe(scp)}, expected an array of scope strings`);
    }
    return items as string[];
  }

  return undefined;
}

function invalidToken(detail: string, cause?: unknown): IdentityError {
  return new IdentityError('WG_AUTH_TOKEN_INVALID', `Bearer token ${detail}. Send a valid access token from a configured issuer.`, { cause });
}

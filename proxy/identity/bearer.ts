import { readFile } from 'node:fs/promises';

import { createLocalJWKSet, createRemoteJWKSet, customFetch, decodeJwt, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';

import { describe, IdentityError, invalidOption } from './errors.ts';
import { createHttpsFetch } from './https-fetch.ts';
import type { BearerIssuerOptions } from './options.ts';
import type { Principal } from './principal.ts';

const MAX_TOKEN_LENGTH = 8 * 1024;
const CLOCK_SKEW_S = 30;

interface IssuerVerifier {
  readonly options: BearerIssuerOptions;
  readonly keys: JWTVerifyGetKey;
}

/** Verifies bearer JWT access tokens (RFC 6750, RFC 9068) from configured issuers. */
export class BearerVerifier {
  readonly #issuers: ReadonlyMap<string, IssuerVerifier>;

  private constructor(issuers: Map<string, IssuerVerifier>) {
    this.#issuers = issuers;
  }

  /** Loads key sets: `jwks_file` is read now (bad files fail start-up), `jwks_uri` is fetched on first use and cached. */
  static async create(issuers: readonly BearerIssuerOptions[]): Promise<BearerVerifier> {
    const verifiers = new Map<string, IssuerVerifier>();
    for (const [i, options] of issuers.entries()) {
      let keys: JWTVerifyGetKey;
      if (options.jwks_file !== undefined) {
        let jwks: JSONWebKeySet;
        try {
          jwks = JSON.parse(await readFile(options.jwks_file, 'utf8')) as JSONWebKeySet;
          keys = createLocalJWKSet(jwks);
        } catch (cause) {
          invalidOption(`bearer.issuers[${i}].jwks_file`, `a readable JWKS file (${(cause as Error).message})`, options.jwks_file);
        }
      } else {
        keys = createRemoteJWKSet(new URL(options.jwks_uri as string), { [customFetch]: createHttpsFetch(options.ca) });
      }
      verifiers.set(options.issuer, { options, keys });
    }

    return new BearerVerifier(verifiers);
  }

  /**
   * Verifies a token and returns its principal. Throws `WG_AUTH_TOKEN_EXPIRED` for an
   * expired token and `WG_AUTH_TOKEN_INVALID` for anything else wrong: malformed, unknown
   * issuer, disallowed algorithm (always including `none` and HS*), bad signature, wrong audience.
   */
  async verify(token: string, nowS: number): Promise<Principal> {
    if (token.length > MAX_TOKEN_LENGTH) {
      throw invalidToken(`is ${token.length} characters long, more than the maximum of ${MAX_TOKEN_LENGTH}`);
    }

    let issuer: unknown;
    try {
      issuer = decodeJwt(token).iss;
    } catch {
      throw invalidToken('is not a JWT');
    }
    const verifier = typeof issuer === 'string' ? this.#issuers.get(issuer) : undefined;
    if (verifier === undefined) {
      throw invalidToken(`has issuer ${describe(issuer)}, which is not a configured bearer issuer`);
    }

    let payload;
    try {
      ({ payload } = await jwtVerify(token, verifier.keys, {
        issuer: verifier.options.issuer,
        audience: verifier.options.audience,
        algorithms: [...verifier.options.algorithms],
        clockTolerance: CLOCK_SKEW_S,
        currentDate: new Date(nowS * 1000),
        requiredClaims: ['sub', 'exp'],
      }));
    } catch (cause) {
      if (cause instanceof joseErrors.JWTExpired) {
        throw new IdentityError('WG_AUTH_TOKEN_EXPIRED', 'Bearer token has expired (claim "exp"). Request a new access token.', { cause });
      }
      const claim = cause instanceof joseErrors.JWTClaimValidationFailed ? ` claim "${cause.claim}"` : '';
      throw invalidToken(`failed verification${claim}: ${(cause as Error).message}`, cause);
    }

    const groups = payload.groups;
    if (groups !== undefined && !(Array.isArray(groups) && groups.every((g) => typeof g === 'string'))) {
      throw invalidToken(`has claim "groups" ${describe(groups)}, expected an array of strings`);
    }

    return {
      subject: payload.sub as string,
      groups: (groups as string[] | undefined) ?? [],
      ...(typeof payload.email === 'string' ? { email: payload.email } : {}),
      ...(typeof payload.acr === 'string' ? { acr: payload.acr } : {}),
      ...(Number.isSafeInteger(payload.auth_time) ? { auth_time: payload.auth_time as number } : {}),
      method: 'bearer',
    };
  }
}

function invalidToken(detail: string, cause?: unknown): IdentityError {
  return new IdentityError('WG_AUTH_TOKEN_INVALID', `Bearer token ${detail}. Send a valid access token from a configured issuer.`, { cause });
}

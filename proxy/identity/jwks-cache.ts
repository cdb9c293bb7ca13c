import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';

import { IdentityError } from './errors.ts';
import type { HttpsFetch } from './https-fetch.ts';

/** Options of {@link RemoteKeySet}. */
export interface RemoteKeySetOptions {
  readonly url: string;
  readonly fetch: HttpsFetch;
  /** Minimum time between two fetches caused by an unknown `kid`, in seconds. */
  readonly cooldownS: number;
  /** Age after which the cached key set is fetched again before use, in seconds. */
  readonly maxAgeS: number;
}

const MAX_KEYS = 100;

/**
 * A cached remote JWKS. Keys are fetched on first use and kept for `maxAgeS`. A token whose
 * `kid` is not in the cache triggers one refetch, but at most one per `cooldownS`, so a
 * stream of tokens with invented key ids cannot make Wardgate flood the issuer with requests. A failed
 * fetch keeps the cached keys; with none cached, its error is repeated until the cooldown ends. Concurrent
 * callers share one fetch. The clock is the caller's (`nowS`), which keeps tests and replays
 * deterministic.
 */
export class RemoteKeySet {
  readonly #options: RemoteKeySetOptions;
  #keys: JWTVerifyGetKey | undefined;
  #fetchedAtS = Number.NEGATIVE_INFINITY;
  #pending: Promise<void> | undefined;
  #fetchCount = 0;
  /** Error of the last fetch while no keys are cached; repeated until the cooldown ends. */
  #lastError: IdentityError | undefined;

  constructor(options: RemoteKeySetOptions) {
    this.#options = options;
  }

  /** Number of JWKS fetches started so far, for diagnostics and tests. */
  get fetchCount(): number {
    return this.#fetchCount;
  }

  /** Returns a jose key resolver bound to the request time `nowS` (seconds since the epoch). */
  resolverAt(nowS: number): JWTVerifyGetKey {
    return async (header, token) => {
      if (this.#keys === undefined && this.#lastError !== undefined && nowS - this.#fetchedAtS < this.#options.cooldownS) {
        throw this.#lastError;
      }
      if (this.#keys === undefined || nowS - this.#fetchedAtS >= this.#options.maxAgeS) {
        await this.#refresh(nowS);
      }

      try {
        return await this.#keys!(header, token);
      } catch (error) {
        if (!(error instanceof joseErrors.JWKSNoMatchingKey) || nowS - this.#fetchedAtS < this.#options.cooldownS) {
          throw error;
        }
      }

      await this.#refresh(nowS);
      return this.#keys!(header, token);
    };
  }

  async #refresh(nowS: number): Promise<void> {
    this.#pending ??= this.#fetch(nowS).finally(() => {
      this.#pending = undefined;
    });
    await this.#pending;
  }

  async #fetch(nowS: number): Promise<void> {
    const { url } = this.#options;
    this.#fetchCount += 1;
    // A failed fetch also starts the cooldown, so an unreachable issuer is not retried per request.
    this.#fetchedAtS = nowS;
    this.#lastError = undefined;

    let jwks: unknown;
    try {
      const response = await this.#options.fetch(url, { headers: { accept: 'application/json, application/jwk-set+json' } });
      if (response.status !== 200) {
        throw new Error(`status ${response.status}`);
      }
      jwks = await response.json();
    } catch (cause) {
      if (this.#keys !== undefined) return;
      this.#lastError = new IdentityError('WG_AUTH_JWKS_UNAVAILABLE', `JWKS at ${url} could not be fetched (${(cause as Error).message}). Check that the issuer is reachable; requests with its tokens fail until it is.`, { cause });
      throw this.#lastError;
    }

    const keys = (jwks as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(keys) || keys.length > MAX_KEYS) {
      if (this.#keys !== undefined) return;
      this.#lastError = new IdentityError('WG_AUTH_JWKS_UNAVAILABLE', `JWKS at ${url} is invalid: expected an object with a "keys" array of at most ${MAX_KEYS} keys. Check the issuer's jwks_uri.`);
      throw this.#lastError;
    }

    this.#keys = createLocalJWKSet(jwks as JSONWebKeySet);
  }
}

import type { AuthResult } from '../ports.ts';
import { IdentityError } from './errors.ts';
import { bearerChallenge } from './request-kind.ts';

/**
 * Rejects a bearer caller whose token lacks one of `required` scopes with 403 and
 * `WWW-Authenticate: Bearer error="insufficient_scope", scope="..."` (RFC 6750 section 3.1).
 * Session and certificate callers carry no OAuth scopes, so only `bearer` principals are
 * checked; policy rules govern the others.
 */
export function requireScopes(auth: AuthResult, required: readonly string[] | undefined): AuthResult {
  if (auth.kind !== 'authenticated' || auth.principal.method !== 'bearer' || required === undefined || required.length === 0) {
    return auth;
  }

  const granted = new Set(auth.principal.scopes ?? []);
  const missing = required.filter((scope) => !granted.has(scope));
  if (missing.length === 0) {
    return auth;
  }

  const error = new IdentityError('WG_AUTH_INSUFFICIENT_SCOPE', `Bearer token lacks scope ${missing.map((scope) => JSON.stringify(scope)).join(', ')} required by this route. Request a token with scope "${required.join(' ')}".`);
  return {
    kind: 'rejected',
    status: error.status,
    code: error.code,
    message: error.message,
    wwwAuthenticate: bearerChallenge({ error: 'insufficient_scope', error_description: 'The access token lacks a scope this resource requires', scope: required.join(' ') }),
  };
}

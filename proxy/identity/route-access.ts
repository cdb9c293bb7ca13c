import type { AuthResult } from '../ports.ts';
import type { RouteConfig } from '../routing/router.ts';
import type { TlsFacts } from '../tls/listener.ts';
import { withClientCertificate } from './mtls.ts';
import { requireScopes } from './scopes.ts';

/**
 * Completes the authentication result of one request with the transport and the route: the
 * client certificate (see {@link withClientCertificate}), then the route's `required_scopes`
 * (see {@link requireScopes}). `unavailable` passes through.
 */
export function completeAuthentication<T extends AuthResult | 'unavailable'>(auth: T, tls: TlsFacts, route: RouteConfig): T | AuthResult {
  if (auth === 'unavailable') {
    return auth;
  }

  return requireScopes(withClientCertificate(auth as AuthResult, tls), route.required_scopes);
}

import type { AuthResult } from '../ports.ts';
import type { TlsFacts } from '../tls/listener.ts';
import { IdentityError } from './errors.ts';
import type { Principal } from './principal.ts';

/**
 * Returns the device identity of a verified client certificate: its first URI SAN, else its
 * first DNS SAN, or `undefined` when it has neither.
 */
export function deviceIdentity(certificate: NonNullable<TlsFacts['clientCertificate']>): string | undefined {
  const uri = certificate.san.find((entry) => entry.startsWith('URI:'));
  if (uri !== undefined) return uri.slice(4);
  const dns = certificate.san.find((entry) => entry.startsWith('DNS:'));

  return dns?.slice(4);
}

/**
 * Adds what the client certificate proves to the authentication result of one request.
 *
 * - A certificate that was presented but failed verification (revoked, expired, unknown CA)
 *   rejects the request with 403 `WG_AUTH_CERTIFICATE_INVALID`, even with a valid token,
 *   because a revoked device must not ride on another credential.
 * - A verified certificate makes an anonymous caller the device: method `mtls`, subject and
 *   `device` set to the SAN. A caller already authenticated by token or session keeps its
 *   principal and gains `device`.
 * - Without a certificate the result is unchanged.
 */
export function withClientCertificate(auth: AuthResult, tls: TlsFacts): AuthResult {
  if (auth.kind === 'rejected') {
    return auth;
  }
  if (tls.clientCertificateError !== undefined) {
    return rejected(`Client certificate was rejected (${tls.clientCertificateError}). Renew or reissue the device certificate from the configured CA.`);
  }
  if (tls.clientCertificate === undefined) {
    return auth;
  }

  const device = deviceIdentity(tls.clientCertificate);
  if (device === undefined) {
    return rejected(`Client certificate ${JSON.stringify(tls.clientCertificate.subject)} has no URI or DNS subject alternative name to identify the device. Reissue it with a SAN.`);
  }

  if (auth.kind === 'authenticated') {
    return { ...auth, principal: { ...auth.principal, device } };
  }

  const principal: Principal = { subject: device, groups: [], method: 'mtls', device };
  return { kind: 'authenticated', principal, elevatedAcr: [] };
}

function rejected(message: string): AuthResult {
  const error = new IdentityError('WG_AUTH_CERTIFICATE_INVALID', message);
  return { kind: 'rejected', status: error.status, code: error.code, message: error.message };
}

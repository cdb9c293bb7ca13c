import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

type Headers = IncomingHttpHeaders | OutgoingHttpHeaders;

/** Header names (in canonical form: lowercase, `_` read as `-`) that only Wardgate may set. */
const IDENTITY_HEADERS: ReadonlySet<string> = new Set([
  'x-forwarded-user',
  'x-forwarded-email',
  'x-forwarded-groups',
  'x-forwarded-preferred-username',
  'x-forwarded-access-token',
  'remote-user',
  'remote-groups',
  'remote-email',
  'remote-name',
  'x-remote-user',
  'x-remote-groups',
  'x-remote-email',
  'x-user',
  'x-auth-user',
  'x-email',
]);
const IDENTITY_PREFIXES = ['x-auth-request-', 'x-wardgate-'];

/** Canonical form of a header name: lowercase, with `_` read as `-`, since some servers treat them alike. */
function canonicalName(name: string): string {
  return name.toLowerCase().replace(/_/g, '-');
}

/**
 * Removes from `headers` (in place) every header a client could use to claim an identity:
 * the assertion header `assertionHeaderName`, X-Forwarded-User, -Email, -Groups and
 * -Preferred-Username and -Access-Token, X-Auth-Request-*, Remote-User, -Groups, -Email and
 * -Name (also with X-), X-User, X-Auth-User, X-Email and X-Wardgate-*, in any
 * spelling of case, `-` or `_`.
 *
 * @returns the names removed, as they were spelled, for logging.
 */
export function stripIdentityHeaders(headers: Headers, assertionHeaderName: string): string[] {
  const assertion = canonicalName(assertionHeaderName);
  const removed: string[] = [];

  for (const name of Object.keys(headers)) {
    const canonical = canonicalName(name);
    const isIdentity = canonical === assertion
      || IDENTITY_HEADERS.has(canonical)
      || IDENTITY_PREFIXES.some((prefix) => canonical.startsWith(prefix));

    if (isIdentity) {
      delete headers[name];
      removed.push(name);
    }
  }

  return removed;
}

/** Facts about the original request that Wardgate sends upstream in X-Forwarded-* headers. */
export interface ForwardedFacts {
  /** Address of the client as Wardgate saw it (socket peer), without port. */
  readonly clientIp: string;
  readonly proto: 'http' | 'https';
  /** Host the client asked for, with port when it sent one. */
  readonly host: string;
  /** Full X-Forwarded-For chain, client first, when trusted proxies relayed the request; default `[clientIp]`. */
  readonly chain?: readonly string[];
}

/**
 * Sets X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host from `facts`, replacing any
 * spelling of them the client sent, and removes `Forwarded` (RFC 7239), because a client
 * could forge any of them. The client's own X-Forwarded-For chain is dropped unless the caller
 * passes the part of it that trusted proxies vouch for as `facts.chain`.
 */
export function setForwardedHeaders(headers: Headers, facts: ForwardedFacts): void {
  for (const name of Object.keys(headers)) {
    const canonical = canonicalName(name);
    if (canonical === 'forwarded' || canonical === 'x-forwarded-for' || canonical === 'x-forwarded-proto' || canonical === 'x-forwarded-host' || canonical === 'x-forwarded-port' || canonical === 'x-real-ip') {
      delete headers[name];
    }
  }

  headers['x-forwarded-for'] = (facts.chain ?? [facts.clientIp]).join(', ');
  headers['x-forwarded-proto'] = facts.proto;
  headers['x-forwarded-host'] = facts.host;
}

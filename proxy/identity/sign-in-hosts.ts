import { X509Certificate } from 'node:crypto';

import type { RouteConfig } from '../routing/router.ts';

/**
 * Builds the check for hosts that may appear in an OIDC `redirect_uri`: the exact host of
 * every route, and, when a route matches every host (`*`), each DNS or IP name of the
 * listener's certificate. A `*.example.org` certificate name allows one label in its place.
 * Names are compared lowercased and without port, and IPv6 addresses without brackets.
 */
export function createSignInHostCheck(routes: readonly RouteConfig[], certificatePem: string): (host: string) => boolean {
  const exact = new Set<string>();
  const wildcardSuffixes: string[] = [];
  for (const route of routes) {
    if (route.host !== '*') exact.add(route.host.toLowerCase());
  }

  if (routes.some((route) => route.host === '*')) {
    for (const name of certificateNames(certificatePem)) {
      if (name.startsWith('*.')) wildcardSuffixes.push(name.slice(1));
      else exact.add(name);
    }
  }

  return (host: string): boolean => {
    const name = normalizeName(host);
    if (exact.has(name)) return true;
    return wildcardSuffixes.some((suffix) => name.endsWith(suffix) && !name.slice(0, -suffix.length).includes('.') && name.length > suffix.length);
  };
}

/** Lowercases a host name and writes an IPv6 address in its shortest form without brackets, as `::1`. */
function normalizeName(host: string): string {
  const name = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (!name.includes(':')) return name;

  return URL.parse(`https://[${name}]/`)?.hostname.slice(1, -1) ?? name;
}

/** Reads the DNS and IP subject alternative names of the first certificate in a PEM bundle. */
function certificateNames(pem: string): string[] {
  const names: string[] = [];
  for (const entry of (new X509Certificate(pem).subjectAltName ?? '').split(', ')) {
    const match = /^(DNS|IP Address):(.+)$/.exec(entry);
    if (match !== null) names.push(normalizeName(match[2]!));
  }

  return names;
}

import type { IncomingMessage } from 'node:http';

import { IdentityError } from './errors.ts';

/**
 * Tells API clients from browsers: a request with an Authorization header, or whose
 * Accept header does not list text/html with a quality above 0, gets 401 challenges in place
 * of redirects and JSON in place of HTML pages.
 */
export function isApiClient(req: IncomingMessage): boolean {
  if (req.headers.authorization !== undefined) {
    return true;
  }

  return !acceptsHtml(req.headers.accept ?? '');
}

/** Returns whether an Accept header lists the media range `text/html` (any letter case) with q above 0 (RFC 9110 section 12.5.1). */
function acceptsHtml(accept: string): boolean {
  return accept.split(',').some((range) => {
    const [type, ...parameters] = range.split(';').map((part) => part.trim().toLowerCase());
    if (type !== 'text/html') return false;
    const quality = parameters.find((parameter) => parameter.startsWith('q='));
    return quality === undefined || Number(quality.slice(2)) > 0;
  });
}

/** Returns the request's origin, `https://<host>`, after checking the Host header's syntax. */
export function requestOrigin(req: IncomingMessage): string {
  const host = req.headers.host;
  if (typeof host !== 'string' || !/^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i.test(host)) {
    throw new IdentityError('WG_AUTH_INVALID_HOST', `Header "Host" must be a host name or IP address with an optional port, received ${JSON.stringify(String(host).slice(0, 100))}.`);
  }

  return `https://${host.toLowerCase()}`;
}

/** Formats a `WWW-Authenticate: Bearer` challenge (RFC 6750 section 3, RFC 9470 section 3). */
export function bearerChallenge(params: Readonly<Record<string, string | number>> = {}): string {
  const parts = [`realm="wardgate"`];
  for (const [name, value] of Object.entries(params)) {
    parts.push(typeof value === 'number' ? `${name}=${value}` : `${name}="${value.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '')}"`);
  }

  return `Bearer ${parts.join(', ')}`;
}

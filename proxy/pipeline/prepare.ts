import type { IncomingMessage } from 'node:http';
import { checkFraming, checkMethod, HttpError, normalizePath, resolveForwardedOrigin, setForwardedHeaders, stripIdentityHeaders, type TrustedProxies } from '../http/index.ts';
import type { RouteConfig } from '../routing/router.ts';
import type { RouterPort } from '../ports.ts';

export type PreparedRequest =
  | {
      readonly ok: true;
      /** Normalized path and query; this is what policy sees and what is forwarded. */
      readonly url: URL;
      /** Host name without port, lowercased. */
      readonly host: string;
      readonly route: RouteConfig | null;
      readonly clientIp: string;
    }
  | { readonly ok: false; readonly status: number; readonly code: string; readonly message: string };

/**
 * Checks framing, normalizes the path once, selects the route, and replaces the headers a
 * client must not control (identity headers, X-Forwarded-*). Rewrites `req.url` to the
 * normalized form so the forwarder sends exactly what the policy saw.
 */
export function prepareRequest(req: IncomingMessage, router: RouterPort, assertionHeader: string, trustedProxies?: TrustedProxies): PreparedRequest {
  const host = parseHost(req.headers.host);
  let normalized: { path: string; query: string };
  try {
    checkFraming(req);
    checkMethod(req.method);
    if (!host) throw new HttpError('WG_HTTP_BAD_HOST', `Invalid or missing Host header ${JSON.stringify(req.headers.host ?? '')}; send the host name of the application.`);
    normalized = normalizePath(req.url ?? '', req.method ?? 'GET');
  } catch (error) {
    if (!(error instanceof HttpError)) throw error;
    return { ok: false, status: error.status, code: error.code, message: error.message };
  }
  const search = normalized.query === '' ? '' : `?${normalized.query}`;
  req.url = normalized.path + search;

  // The socket address is the client unless it is a trusted proxy (listen.trusted_proxies).
  const forwarded = resolveForwardedOrigin(req, stripIpv4Mapping(req.socket.remoteAddress ?? ''), req.headers.host ?? host, trustedProxies);
  const clientIp = forwarded.clientIp;
  stripIdentityHeaders(req.headers, assertionHeader);
  setForwardedHeaders(req.headers, forwarded);

  const url = new URL(`https://${host}${normalized.path}${search}`);
  return { ok: true, url, host, route: router.match(host, normalized.path) ?? null, clientIp };
}

/** Returns the host name of a Host header without its port, lowercased, or null when invalid. */
function parseHost(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9.-]+)(?::(\d{1,5}))?$/.exec(header);
  if (!match) return null;
  return match[1]!.toLowerCase().replace(/^\[|\]$/g, '');
}

function stripIpv4Mapping(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

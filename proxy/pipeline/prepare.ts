import type { IncomingMessage } from 'node:http';
import { isIPv6 } from 'node:net';
import { checkFraming, checkMethod, checkMethodOverride, HttpError, normalizePath, resolveForwardedOrigin, setForwardedHeaders, stripHopByHopHeaders, stripIdentityHeaders, type TrustedProxies } from '../http/index.ts';
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
 * client must not control (identity headers, X-Forwarded-*) or that end at Wardgate
 * (hop-by-hop headers). Rewrites `req.url` to the normalized form so the forwarder sends
 * exactly what the policy saw. `upgrade` is true for requests from the server's 'upgrade'
 * event, whose Upgrade header stays when it requests a WebSocket.
 */
export function prepareRequest(req: IncomingMessage, router: RouterPort, assertionHeader: string, trustedProxies?: TrustedProxies, upgrade = false): PreparedRequest {
  const host = parseHost(req.headers.host);
  let normalized: { path: string; query: string };
  try {
    checkFraming(req);
    checkMethod(req.method);
    if (!host) throw badHostError(req.headers.host);
    normalized = normalizePath(req.url ?? '', req.method ?? 'GET');
    checkMethodOverride(req.headers, normalized.query);
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
  stripHopByHopHeaders(req.headers, upgrade && isWebSocketHandshake(req));
  setForwardedHeaders(req.headers, forwarded);

  // An IPv6 literal needs its brackets back in a URL: `https://::1/` is not a valid URL.
  const url = URL.parse(`https://${host.includes(':') ? `[${host}]` : host}${normalized.path}${search}`);
  if (url === null) return badHost(req.headers.host);

  return { ok: true, url, host, route: router.match(host, normalized.path) ?? null, clientIp };
}

function badHostError(header: string | undefined): HttpError {
  return new HttpError('WG_HTTP_BAD_HOST', `Invalid or missing Host header ${JSON.stringify(header ?? '')}; send the host name of the application.`);
}

function badHost(header: string | undefined): PreparedRequest {
  const error = badHostError(header);
  return { ok: false, status: error.status, code: error.code, message: error.message };
}

/**
 * Returns the host name of a Host header without its port, lowercased, or null when invalid.
 * An IPv6 literal such as `[::1]:8443` is returned without its brackets, as `::1`.
 */
function parseHost(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([a-zA-Z0-9.-]+))(?::(\d{1,5}))?$/.exec(header);
  if (!match) return null;
  if (match[1] !== undefined) return isIPv6(match[1]) ? match[1].toLowerCase() : null;
  return match[2]!.toLowerCase();
}

function isWebSocketHandshake(req: IncomingMessage): boolean {
  return typeof req.headers.upgrade === 'string' && req.headers.upgrade.toLowerCase() === 'websocket';
}

function stripIpv4Mapping(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

type Headers = IncomingHttpHeaders | OutgoingHttpHeaders;

/**
 * Header names (in canonical form: lowercase, `_` read as `-`) that only Wardgate may set.
 * They are identity headers of Wardgate and of other authenticating proxies (oauth2-proxy,
 * Envoy, nginx and Apache client certificates, AWS ALB, Azure App Service, Google IAP,
 * Cloudflare Access), path overrides and client-address headers.
 */
const IDENTITY_HEADERS: ReadonlySet<string> = new Set([
  'x-forwarded-user',
  'x-forwarded-email',
  'x-forwarded-groups',
  'x-forwarded-preferred-username',
  'x-forwarded-access-token',
  'x-forwarded-client-cert',
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
  'x-client-cert',
  'x-userinfo',
  'x-id-token',
  'x-access-token',
  'x-authenticated-user',
  'x-authenticated-userid',
  'authenticated-user',
  'x-groups',
  // Path overrides, which some frameworks and rewrite modules read in place of the request line.
  'x-original-url',
  'x-rewrite-url',
  // Client addresses that CDNs and load balancers set.
  'true-client-ip',
  'x-client-ip',
]);
const IDENTITY_PREFIXES = [
  'x-auth-request-',
  'x-wardgate-',
  'x-ssl-client-',
  'x-amzn-oidc-',
  'x-ms-client-principal',
  'x-goog-authenticated-user-',
  'cf-access-',
];

/** Canonical form of a header name: lowercase, with `_` read as `-`, since some servers treat them alike. */
function canonicalName(name: string): string {
  return name.toLowerCase().replace(/_/g, '-');
}

/**
 * Removes from `headers` (in place) every header a client could use to claim an identity,
 * override the path or claim a client address, in any spelling of case, `-` or `_`. These
 * are the assertion header `assertionHeaderName`, the names in {@link IDENTITY_HEADERS}
 * (X-Forwarded-User, Remote-User, X-Original-URL, True-Client-IP and others), and every
 * name that starts with one of {@link IDENTITY_PREFIXES} (X-Wardgate-*, X-SSL-Client-*,
 * X-Amzn-Oidc-*, Cf-Access-* and others).
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

/**
 * Hop-by-hop headers (RFC 9110 section 7.6.1): they describe one connection, so a proxy
 * removes them before forwarding. Transfer-Encoding is hop-by-hop too but stays, because
 * Node's HTTP client frames the forwarded body by it.
 */
const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'te', 'proxy-authorization', 'proxy-connection', 'upgrade']);

/** Headers that a `Connection` list cannot remove, because the forwarded request needs them for its framing and target. */
const FRAMING_HEADERS: ReadonlySet<string> = new Set(['host', 'content-length', 'transfer-encoding']);

/**
 * Removes from `headers` (in place) Connection, every header it lists, and the other
 * hop-by-hop headers in {@link HOP_BY_HOP_HEADERS}, in any spelling of case, `-` or `_`.
 * Host, Content-Length and Transfer-Encoding stay even when listed. For a WebSocket
 * upgrade (`webSocketUpgrade`), Upgrade stays and Connection is set to `Upgrade`, so the
 * upstream receives the handshake and nothing else the client listed.
 *
 * @returns the names removed, as they were spelled, for logging.
 */
export function stripHopByHopHeaders(headers: Headers, webSocketUpgrade: boolean): string[] {
  const listed = new Set<string>();
  for (const [name, value] of Object.entries(headers)) {
    if (canonicalName(name) !== 'connection' || value === undefined) continue;

    for (const item of [value].flat().join(',').split(',')) {
      const token = canonicalName(item.trim());
      if (token !== '' && !FRAMING_HEADERS.has(token)) listed.add(token);
    }
  }

  const removed: string[] = [];
  for (const name of Object.keys(headers)) {
    const canonical = canonicalName(name);
    if (webSocketUpgrade && canonical === 'upgrade') continue;

    if (HOP_BY_HOP_HEADERS.has(canonical) || listed.has(canonical)) {
      delete headers[name];
      removed.push(name);
    }
  }

  if (webSocketUpgrade) headers.connection = 'Upgrade';
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
 * Headers besides the `X-Forwarded-*` family with which frameworks learn the client, scheme or
 * original path from a proxy or CDN: Rails reads `Client-IP`, Werkzeug's ProxyFix and WSGI read
 * `X-Script-Name` into `SCRIPT_NAME`, and Tornado reads `X-Scheme`. NOTE: the list contains the
 * common names, so an application that trusts another header name needs it added here.
 */
const PROXY_HEADERS: ReadonlySet<string> = new Set([
  'forwarded', 'forwarded-for', 'x-forwarded', 'x-real-ip', 'client-ip', 'x-client-ip', 'x-cluster-client-ip', 'true-client-ip',
  'cf-connecting-ip', 'fastly-client-ip', 'x-proxyuser-ip', 'x-originating-ip', 'x-envoy-external-address', 'x-original-forwarded-for',
  'x-script-name', 'x-original-uri', 'x-original-method', 'x-original-host', 'x-host', 'x-scheme', 'x-url-scheme', 'front-end-https',
]);

/**
 * Sets X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host from `facts`. It first removes
 * every `X-Forwarded-*` header the client sent in any spelling (Spring and ProxyFix read
 * `X-Forwarded-Prefix` into the application's path), `Forwarded` (RFC 7239) and the other
 * proxy headers of {@link PROXY_HEADERS}, because a client could forge any of them. The
 * client's own X-Forwarded-For chain is dropped unless the caller passes the part of it that
 * trusted proxies vouch for as `facts.chain`.
 */
export function setForwardedHeaders(headers: Headers, facts: ForwardedFacts): void {
  for (const name of Object.keys(headers)) {
    const canonical = canonicalName(name);
    if (canonical.startsWith('x-forwarded-') || PROXY_HEADERS.has(canonical)) {
      delete headers[name];
    }
  }

  headers['x-forwarded-for'] = (facts.chain ?? [facts.clientIp]).join(', ');
  headers['x-forwarded-proto'] = facts.proto;
  headers['x-forwarded-host'] = facts.host;
}

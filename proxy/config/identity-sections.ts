import type { Node } from 'yaml';

import { createTrustedProxies, parseCidr, type Cidr, type TrustedProxies } from '../http/trusted-proxies.ts';
import { ACCEPTABLE_ALGORITHMS, DEFAULT_ALGORITHMS } from '../identity/options.ts';
import type { OptionReader } from './reader.ts';

/** One trusted bearer token issuer as written in the configuration file; `ca` is a file path. */
export interface BearerIssuerConfig {
  readonly issuer: string;
  readonly audience: string;
  readonly jwks_uri?: string;
  readonly jwks_file?: string;
  readonly algorithms: readonly string[];
  readonly ca?: string;
  /** Seconds of clock skew tolerated on `exp`, `nbf` and `iat`. */
  readonly clock_skew: number;
}

/** The `bearer` section: trusted issuers of access tokens and JWKS caching. */
export interface BearerConfig {
  readonly issuers: readonly BearerIssuerConfig[];
  /** Minimum seconds between two JWKS fetches caused by an unknown `kid`. */
  readonly jwks_cooldown: number;
  /** Seconds after which a cached remote JWKS is fetched again. */
  readonly jwks_max_age: number;
}

export const ASSERTION_ALGORITHMS = ['ES256', 'ML-DSA-65'] as const;
export type AssertionAlgorithm = (typeof ASSERTION_ALGORITHMS)[number];

const ISSUER_KEYS = ['issuer', 'audience', 'jwks_uri', 'jwks_file', 'algorithms', 'ca', 'clock_skew'];
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/** Reads the optional `bearer` section; relative `jwks_file` and `ca` paths go through `resolve`. */
export function readBearer(reader: OptionReader, node: Node | undefined, resolve: (value: string) => string): BearerConfig | undefined {
  if (node === undefined) return undefined;
  const section = reader.map(node, 'bearer', ['issuers', 'jwks_cooldown', 'jwks_max_age']);
  if (section === null) return undefined;

  const issuers: BearerIssuerConfig[] = [];
  const seen = new Set<string>();
  const items = reader.list(section.get('issuers'), 'bearer.issuers');
  if (section.get('issuers') !== undefined && items.length === 0) reader.report(section.get('issuers'), 'bearer.issuers', 'expected at least one issuer; remove the bearer section to accept no bearer tokens');

  items.forEach((item, index) => {
    const option = `bearer.issuers[${index}]`;
    const fields = reader.map(item, option, ISSUER_KEYS);
    if (fields === null) return;

    const issuer = reader.string(fields.get('issuer'), `${option}.issuer`);
    if (issuer !== '' && !isHttpsUrl(issuer)) reader.report(fields.get('issuer'), `${option}.issuer`, `expected an https URL exactly as the tokens' "iss" claim spells it, got ${JSON.stringify(issuer)}`);
    if (seen.has(issuer)) reader.report(fields.get('issuer'), `${option}.issuer`, `issuer ${JSON.stringify(issuer)} is listed twice; merge the entries`);
    seen.add(issuer);

    const jwksUri = reader.optionalString(fields.get('jwks_uri'), `${option}.jwks_uri`);
    const jwksFile = reader.optionalString(fields.get('jwks_file'), `${option}.jwks_file`);
    if ((jwksUri === undefined) === (jwksFile === undefined)) {
      reader.report(item, option, 'set exactly one of jwks_uri (a URL the keys are fetched from) and jwks_file (a local JWKS file)');
    }
    if (jwksUri !== undefined && !isHttpsUrl(jwksUri)) reader.report(fields.get('jwks_uri'), `${option}.jwks_uri`, `expected an https URL (http only for localhost), got ${JSON.stringify(jwksUri)}`);

    const algorithms = readStringList(reader, fields.get('algorithms'), `${option}.algorithms`) ?? [...DEFAULT_ALGORITHMS];
    const rejected = algorithms.filter((alg) => !ACCEPTABLE_ALGORITHMS.has(alg));
    if (rejected.length > 0 || algorithms.length === 0) {
      reader.report(fields.get('algorithms'), `${option}.algorithms`, `expected a non-empty list of asymmetric JWS algorithms (${[...ACCEPTABLE_ALGORITHMS].join(', ')}), got ${JSON.stringify(rejected.length > 0 ? rejected : algorithms)}; "none" and HS* are never accepted`);
    }

    const ca = reader.optionalString(fields.get('ca'), `${option}.ca`);
    issuers.push({
      issuer,
      audience: reader.string(fields.get('audience'), `${option}.audience`),
      ...(jwksUri === undefined ? {} : { jwks_uri: jwksUri }),
      ...(jwksFile === undefined ? {} : { jwks_file: resolve(jwksFile) }),
      algorithms,
      ...(ca === undefined ? {} : { ca: resolve(ca) }),
      clock_skew: reader.integer(fields.get('clock_skew'), `${option}.clock_skew`, 0, 300, 30),
    });
  });

  return {
    issuers,
    jwks_cooldown: reader.integer(section.get('jwks_cooldown'), 'bearer.jwks_cooldown', 0, 86_400, 60),
    jwks_max_age: reader.integer(section.get('jwks_max_age'), 'bearer.jwks_max_age', 1, 7 * 86_400, 3600),
  };
}

/** Reads `listen.trusted_proxies`, a list of CIDR ranges; absent means no proxy is trusted. */
export function readTrustedProxies(reader: OptionReader, node: Node | undefined): { readonly ranges: readonly Cidr[]; readonly proxies: TrustedProxies } | undefined {
  const items = readStringList(reader, node, 'listen.trusted_proxies');
  if (items === undefined) return undefined;

  const ranges: Cidr[] = [];
  for (const item of items) {
    const parsed = parseCidr(item);
    if ('error' in parsed) reader.report(node, 'listen.trusted_proxies', `${parsed.error}; list the addresses of your load balancers`);
    else if (parsed.prefix === 0) reader.report(node, 'listen.trusted_proxies', `${JSON.stringify(item)} would let every client forge X-Forwarded-For; list the addresses of your load balancers`);
    else ranges.push(parsed);
  }

  return { ranges, proxies: createTrustedProxies(ranges) };
}

/** Reads a route's `required_scopes`, a list of OAuth scope tokens. */
export function readRequiredScopes(reader: OptionReader, node: Node | undefined, option: string): readonly string[] | undefined {
  const scopes = readStringList(reader, node, option);
  for (const scope of scopes ?? []) {
    if (!SCOPE_TOKEN.test(scope)) reader.report(node, option, `scope ${JSON.stringify(scope)} is not a valid OAuth scope token; use printable ASCII without spaces, quotes or backslashes`);
  }

  return scopes;
}

function readStringList(reader: OptionReader, node: Node | undefined, option: string): string[] | undefined {
  if (node === undefined) return undefined;

  return reader.list(node, option).map((item, index) => reader.string(item, `${option}[${index}]`));
}

function isHttpsUrl(value: string): boolean {
  try {
    const url = new URL(value);
    const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
    return (url.protocol === 'https:' || (url.protocol === 'http:' && loopback)) && url.search === '' && url.hash === '' && url.username === '';
  } catch {
    return false;
  }
}

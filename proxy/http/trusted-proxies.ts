import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/** Peers allowed to state the original client, host and scheme in X-Forwarded-* headers. */
export interface TrustedProxies {
  /** Whether `address` (IPv4, IPv6 or IPv4-mapped IPv6) lies in one of the configured ranges. */
  contains(address: string): boolean;
}

/** A parsed CIDR range such as `10.0.0.0/8` or `fd00::/8`. */
export interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/**
 * Parses `address/prefix` (a bare address means a single host). Returns an error message
 * naming the value when it is not a valid range.
 */
export function parseCidr(text: string): Cidr | { readonly error: string } {
  const [address = '', prefixText, ...rest] = text.trim().split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0) {
    return { error: `${JSON.stringify(text)} is not an IP address or CIDR range such as "10.0.0.0/8" or "fd00::/8"` };
  }

  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText ?? String(max)) || prefix > max) {
    return { error: `${JSON.stringify(text)} has prefix length ${JSON.stringify(prefixText)}, expected an integer from 0 to ${max}` };
  }

  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** Builds the trusted proxy set from parsed ranges. */
export function createTrustedProxies(ranges: readonly Cidr[]): TrustedProxies {
  const list = new BlockList();
  for (const range of ranges) list.addSubnet(range.address, range.prefix, range.family);

  return Object.freeze({
    contains(address: string): boolean {
      const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
      const version = isIP(plain);
      return version !== 0 && list.check(plain, version === 4 ? 'ipv4' : 'ipv6');
    },
  });
}

/** The original client, scheme and host of a request as Wardgate accepts them, with the X-Forwarded-For chain to send upstream. */
export interface ForwardedOrigin {
  readonly clientIp: string;
  readonly proto: 'http' | 'https';
  /** Host with optional port, as the client asked for it. */
  readonly host: string;
  /** Addresses for X-Forwarded-For, client first, ending with the socket peer when it is a trusted proxy. */
  readonly chain: readonly string[];
}

/**
 * Works out the original client address, scheme and host of a request. X-Forwarded-For, -Proto
 * and -Host are read only when the socket peer is a trusted proxy. The client is then the
 * right-most X-Forwarded-For address that is not itself a trusted proxy, since every hop left of
 * an untrusted one could be forged. From any other peer the headers are ignored and the socket
 * address, `https` and the Host header stand.
 */
export function resolveForwardedOrigin(req: IncomingMessage, peer: string, host: string, trusted: TrustedProxies | undefined): ForwardedOrigin {
  const direct: ForwardedOrigin = { clientIp: peer, proto: 'https', host, chain: [peer] };
  if (trusted === undefined || !trusted.contains(peer)) {
    return direct;
  }

  const hops = headerValues(req, 'x-forwarded-for').map(stripPort);
  if (hops.some((hop) => isIP(hop) === 0)) {
    return direct;
  }

  let index = hops.length - 1;
  while (index > 0 && trusted.contains(hops[index]!)) index -= 1;
  const clientIp = hops[index] ?? peer;

  const proto = headerValues(req, 'x-forwarded-proto').at(-1)?.toLowerCase();
  const forwardedHost = headerValues(req, 'x-forwarded-host').at(-1);
  const validHost = forwardedHost !== undefined && /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/.test(forwardedHost);

  return {
    clientIp,
    proto: proto === 'http' ? 'http' : 'https',
    host: validHost ? forwardedHost.toLowerCase() : host,
    chain: [...hops.slice(Math.max(index, 0)), peer],
  };
}

/**
 * Returns the comma-separated items of every copy of a header, trimmed, in order. Spellings
 * with `_` are not read: a proxy that sets X-Forwarded-For may pass a client's X_Forwarded_For through.
 */
function headerValues(req: IncomingMessage, name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() === name) {
      values.push(...req.rawHeaders[i + 1]!.split(',').map((item) => item.trim()).filter((item) => item !== ''));
    }
  }

  return values;
}

/** Removes a port from `1.2.3.4:80` or `[::1]:80`; a bare IPv6 address stays as it is. */
function stripPort(hop: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hop);
  if (bracketed) return bracketed[1]!;
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(hop);

  return v4 ? v4[1]! : hop;
}

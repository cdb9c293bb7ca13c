import { BlockList, isIP } from 'node:net';

/** Result of parsing one CIDR: the network, or the reason it is invalid. */
export type CidrParse = { readonly ok: true; readonly address: string; readonly prefix: number; readonly family: 'ipv4' | 'ipv6' } | { readonly ok: false; readonly reason: string };

/**
 * Parses `address/prefix` (IPv4 or IPv6). A bare address means a single host (/32 or /128).
 */
export function parseCidr(text: string): CidrParse {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return { ok: false, reason: `${JSON.stringify(address)} is not an IPv4 or IPv6 address` };

  const maxPrefix = version === 4 ? 32 : 128;
  const prefixText = slash === -1 ? String(maxPrefix) : text.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > maxPrefix) {
    return { ok: false, reason: `prefix length ${JSON.stringify(prefixText)} must be an integer from 0 to ${maxPrefix}` };
  }
  return { ok: true, address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/**
 * The networks whose `traceparent` Wardgate honours: a collector-side load balancer or
 * an API gateway in front of Wardgate. Anyone else could pick trace ids to collide with
 * real traces or hide their requests in someone else's trace, so by default no hop is
 * trusted.
 */
export class TrustedHops {
  readonly #list = new BlockList();
  readonly size: number;

  /** @throws {RangeError} naming the first invalid CIDR; configuration is validated before this. */
  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const parsed = parseCidr(cidr);
      if (!parsed.ok) throw new RangeError(`Invalid trusted hop ${JSON.stringify(cidr)}: ${parsed.reason}.`);
      this.#list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    }
    this.size = cidrs.length;
  }

  /** Tells whether a socket's remote address (IPv4-mapped IPv6 included) is in a trusted network. */
  has(remoteAddress: string | undefined): boolean {
    if (this.size === 0 || !remoteAddress) return false;
    const address = remoteAddress.startsWith('::ffff:') && isIP(remoteAddress.slice(7)) === 4 ? remoteAddress.slice(7) : remoteAddress;
    const version = isIP(address);
    if (version === 0) return false;
    return this.#list.check(address, version === 4 ? 'ipv4' : 'ipv6');
  }
}

import { isIPv4, isIPv6 } from 'node:net';

/**
 * A parsed CIDR block. IPv4 blocks are kept as IPv4-mapped IPv6 (`::ffff:a.b.c.d/96+n`),
 * so that one comparison handles both families and a dual-stack socket address such as
 * `::ffff:10.0.0.5` matches `10.0.0.0/8`.
 */
export interface CidrBlock {
  readonly text: string;
  /** The network address as four 32-bit words, most significant first. */
  readonly words: Uint32Array;
  /** Prefix length over the 128-bit address. */
  readonly prefix: number;
}

/**
 * Parses `address/prefix` (or a bare address, meaning one host). Returns the block, or a
 * message saying what is wrong with it. Host bits set beyond the prefix are rejected,
 * because `10.0.0.1/8` usually hides a typing mistake.
 */
export function parseCidr(text: string): CidrBlock | string {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const words = parseAddress(address);
  if (words === undefined) return 'an IPv4 or IPv6 address';

  const v4 = isIPv4(address);
  const maxPrefix = v4 ? 32 : 128;
  const prefixText = slash === -1 ? String(maxPrefix) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > maxPrefix) return `a prefix length from 0 to ${maxPrefix}`;

  const prefix = Number(prefixText) + (v4 ? 96 : 0);
  const network = maskWords(words, prefix);
  if (!network.every((word, i) => word === words[i])) return 'no address bits set beyond the prefix length';

  return { text, words: network, prefix };
}

/** Parses an IPv4 or IPv6 address into four 32-bit words (IPv4 as IPv4-mapped IPv6), or `undefined`. */
export function parseAddress(address: string): Uint32Array | undefined {
  if (isIPv4(address)) {
    const [a, b, c, d] = address.split('.').map(Number) as [number, number, number, number];
    return Uint32Array.of(0, 0, 0xffff, ((a << 24) | (b << 16) | (c << 8) | d) >>> 0);
  }
  const zone = address.indexOf('%');
  const bare = zone === -1 ? address : address.slice(0, zone);
  if (!isIPv6(bare)) return undefined;

  let text = bare;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted !== null) {
    const v4 = parseAddress(dotted[1]!)![3]!;
    text = `${text.slice(0, dotted.index)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? headParts : [...headParts, ...new Array<string>(8 - headParts.length - tailParts.length).fill('0'), ...tailParts];
  const words = new Uint32Array(4);
  for (let i = 0; i < 4; i++) words[i] = ((parseInt(groups[2 * i]!, 16) << 16) | parseInt(groups[2 * i + 1]!, 16)) >>> 0;

  return words;
}

/** A set of CIDR blocks compiled for lookups of one address at a time. */
export class CidrSet {
  readonly #blocks: readonly CidrBlock[];

  constructor(blocks: readonly CidrBlock[]) {
    this.#blocks = blocks;
  }

  /** Returns whether an address parsed by {@link parseAddress} lies in any block; `undefined` (unparsable) lies in none. */
  has(words: Uint32Array | undefined): boolean {
    if (words === undefined) return false;

    for (const block of this.#blocks) {
      if (inBlock(words, block)) return true;
    }
    return false;
  }
}

function inBlock(words: Uint32Array, block: CidrBlock): boolean {
  const masked = maskWords(words, block.prefix);
  for (let i = 0; i < 4; i++) {
    if (masked[i] !== block.words[i]) return false;
  }
  return true;
}

function maskWords(words: Uint32Array, prefix: number): Uint32Array {
  const result = new Uint32Array(4);
  for (let i = 0; i < 4; i++) {
    const bits = Math.max(0, Math.min(32, prefix - 32 * i));
    const mask = bits === 0 ? 0 : bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    result[i] = (words[i]! & mask) >>> 0;
  }
  return result;
}

import { createHash } from 'node:crypto';
import { isIP } from 'node:net';

import { ScorerError } from '../errors.ts';
import type { ScoreInput } from '../types.ts';

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/**
 * Everything a store needs from one request, derived once so both store implementations
 * compute the same buckets and hashes. Networks and user agents are stored as hashes.
 */
export interface Observation {
  /** Hash tag of the user's keys, `u:` and the first 16 hex digits of SHA-256(user). */
  readonly userTag: string;
  /** Hash tag of the peer group's keys, `g:` and a hash of the sorted, distinct groups. */
  readonly peerTag: string;
  /** The user's id within a peer group: the same 16 hex digits as in `userTag`. */
  readonly member: string;
  readonly minute: number;
  readonly hour: number;
  readonly day: number;
  /** Hour of the week in UTC, 0 = Monday 00:00 to 167 = Sunday 23:00. */
  readonly hourOfWeek: number;
  readonly networkHash: string;
  /** Hash of `input.device` when known, else of the user agent. */
  readonly deviceHash: string;
  /** Hash of the route id. */
  readonly routeHash: string;
  readonly patients: readonly string[];
}

/** Derives the store inputs of one request. */
export function buildObservation(input: ScoreInput, patients: string | readonly string[] = []): Observation {
  if (!Number.isSafeInteger(input.time) || input.time < 0) {
    throw new ScorerError(
      'WG_SCORER_INVALID_INPUT',
      `Invalid request time: expected a non-negative integer of milliseconds since the epoch, received ${String(input.time)}.`,
      { detail: { field: 'time' } },
    );
  }

  const userHash = userHashOf(input.user);
  const groups = [...new Set(input.groups)].sort();
  const day = Math.floor(input.time / DAY_MS);
  const hourOfDay = Math.floor((input.time % DAY_MS) / HOUR_MS);

  return {
    userTag: `u:${userHash}`,
    peerTag: `g:${sha256Hex(`groups\0${groups.join('\0')}`).slice(0, 16)}`,
    member: userHash,
    minute: Math.floor(input.time / MINUTE_MS),
    hour: Math.floor(input.time / HOUR_MS),
    day,
    // 1970-01-01 was a Thursday, so day 0 is weekday 3 when Monday is 0.
    hourOfWeek: ((day + 3) % 7) * 24 + hourOfDay,
    networkHash: sha256Hex(`net\0${networkPrefix(input.ip)}`).slice(0, 16),
    deviceHash: input.device === undefined || input.device === '' ? sha256Hex(`ua\0${input.userAgent}`).slice(0, 16) : sha256Hex(`dev\0${input.device}`).slice(0, 16),
    routeHash: sha256Hex(`route\0${input.routeId}`).slice(0, 16),
    patients: typeof patients === 'string' ? [patients] : [...patients],
  };
}

/** Returns the hash tag of a user's keys, the same as {@link Observation.userTag}. */
export function userTagOf(user: string): string {
  return `u:${userHashOf(user)}`;
}

function userHashOf(user: string): string {
  return sha256Hex(`user\0${user}`).slice(0, 16);
}

/**
 * Returns the client network of an address: the /24 of an IPv4 address (also when written as
 * an IPv4-mapped IPv6 address) or the /48 of an IPv6 address.
 */
export function networkPrefix(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const address = mapped === null ? ip : mapped[1]!;
  const version = isIP(address);

  if (version === 4) {
    const octets = address.split('.');
    return `${octets[0]}.${octets[1]}.${octets[2]}.0/24`;
  }

  if (version === 6) {
    const groups = expandIPv6(address.split('%')[0]!);
    return `${groups.slice(0, 3).join(':')}::/48`;
  }

  throw new ScorerError(
    'WG_SCORER_INVALID_INPUT',
    `Invalid client ip: expected an IPv4 or IPv6 address, received ${JSON.stringify(ip.slice(0, 64))}.`,
    { detail: { field: 'ip' } },
  );
}

function expandIPv6(address: string): string[] {
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const headGroups = head === '' ? [] : head!.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');

  // An embedded IPv4 tail (for example 64:ff9b::1.2.3.4) fills the last two groups.
  const last = tailGroups.length > 0 ? tailGroups : headGroups;
  if (last.length > 0 && last[last.length - 1]!.includes('.')) {
    const octets = last.pop()!.split('.').map(Number);
    last.push(((octets[0]! << 8) | octets[1]!).toString(16), ((octets[2]! << 8) | octets[3]!).toString(16));
  }

  const missing = tail === undefined ? 0 : 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(missing).fill('0'), ...tailGroups];

  return groups.map((group) => Number.parseInt(group, 16).toString(16));
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

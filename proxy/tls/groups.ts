import type { ClientHello } from './client-hello.ts';
import { TlsError } from './errors.ts';

/**
 * TLS named groups by IANA code point ("TLS Supported Groups" registry) with the names
 * Wardgate reports. Several OpenSSL aliases map to the same code point.
 */
const GROUPS_BY_NAME: ReadonlyMap<string, number> = new Map([
  ['P-256', 0x0017], ['prime256v1', 0x0017], ['secp256r1', 0x0017],
  ['P-384', 0x0018], ['secp384r1', 0x0018],
  ['P-521', 0x0019], ['secp521r1', 0x0019],
  ['X25519', 0x001d],
  ['X448', 0x001e],
  ['ffdhe2048', 0x0100], ['ffdhe3072', 0x0101], ['ffdhe4096', 0x0102], ['ffdhe6144', 0x0103], ['ffdhe8192', 0x0104],
  ['MLKEM512', 0x0200], ['MLKEM768', 0x0201], ['MLKEM1024', 0x0202],
  ['SecP256r1MLKEM768', 0x11eb], ['X25519MLKEM768', 0x11ec], ['SecP384r1MLKEM1024', 0x11ed],
]);

const GROUP_NAMES: ReadonlyMap<number, string> = new Map([
  [0x0017, 'P-256'], [0x0018, 'P-384'], [0x0019, 'P-521'], [0x001d, 'X25519'], [0x001e, 'X448'],
  [0x0100, 'ffdhe2048'], [0x0101, 'ffdhe3072'], [0x0102, 'ffdhe4096'], [0x0103, 'ffdhe6144'], [0x0104, 'ffdhe8192'],
  [0x0200, 'MLKEM512'], [0x0201, 'MLKEM768'], [0x0202, 'MLKEM1024'],
  [0x11eb, 'SecP256r1MLKEM768'], [0x11ec, 'X25519MLKEM768'], [0x11ed, 'SecP384r1MLKEM1024'],
]);

/** Groups an ECDHE cipher suite can use in TLS 1.2 (RFC 8422 section 5.1.1); the ML-KEM groups are TLS 1.3 only. */
const TLS12_ECDHE_GROUPS: ReadonlySet<number> = new Set([0x0017, 0x0018, 0x0019, 0x001d, 0x001e]);

export const DEFAULT_GROUPS = 'X25519MLKEM768:X25519:P-256';

/** A parsed OpenSSL group list: tuples in preference order, each a list of code points in preference order. */
export type GroupPreference = readonly (readonly number[])[];

/** Returns the reported name of a group code point, such as `X25519MLKEM768` or `0x6399`. */
export function groupName(codePoint: number): string {
  return GROUP_NAMES.get(codePoint) ?? `0x${codePoint.toString(16).padStart(4, '0')}`;
}

/**
 * Parses an OpenSSL 3.5 group list (the `ecdhCurve` option). `:` separates groups and `/`
 * separates tuples: `X25519MLKEM768/X25519:P-256` is the tuple `[X25519MLKEM768]` followed by
 * `[X25519, P-256]`. The `*` (send a key share) and `?` (ignore if unknown) prefixes are
 * accepted and dropped because they do not change what a server selects.
 *
 * @throws {TlsError} `WG_TLS_INVALID_OPTION` naming `option` for an empty list, an unknown group or a `-` prefix.
 */
export function parseGroupList(list: string, option: string): GroupPreference {
  if (typeof list !== 'string' || list.trim() === '') {
    throw new TlsError('WG_TLS_INVALID_OPTION', `Option ${option} is invalid: expected an OpenSSL group list such as "${DEFAULT_GROUPS}", received ${JSON.stringify(list)}.`);
  }

  const seen = new Set<number>();
  const tuples = list.split('/').map((tuple) => tuple.split(':').flatMap((entry) => {
    const name = entry.trim().replace(/^[*?]+/, '');
    const codePoint = GROUPS_BY_NAME.get(name);

    if (codePoint === undefined) {
      throw new TlsError('WG_TLS_INVALID_OPTION', `Option ${option} is invalid: unknown group "${entry.trim()}" in "${list}". Use names from: ${[...GROUP_NAMES.values()].join(', ')}.`);
    }

    if (seen.has(codePoint)) return [];
    seen.add(codePoint);
    return [codePoint];
  }));

  return Object.freeze(tuples.filter((tuple) => tuple.length > 0).map((tuple) => Object.freeze(tuple)));
}

/**
 * Works out the group an OpenSSL 3.5 server with preference `preference` selects for
 * `hello`, because Node does not report the negotiated group on a server socket.
 *
 * Checked against Node 24.21 (OpenSSL 3.5) by test/edge/tls-groups.test.ts.
 *
 * TLS 1.3: the server walks its tuples in order and stops at the first tuple that contains a
 * group from the client's supported_groups. Within that tuple, the first group in server order
 * that has a client key share wins. Without one, the server sends a HelloRetryRequest for the
 * tuple's first mutually supported group. With a plain `:` list (one tuple) this is
 * "first server-preferred group with a key share, else HelloRetryRequest".
 *
 * TLS 1.2: the first server-preferred ECDHE group that the client lists in supported_groups,
 * or the first server ECDHE group when the client sent no supported_groups.
 *
 * @returns the group name, or `unknown` when no group is shared (the handshake then fails)
 *   or the TLS 1.2 cipher suite is not ECDHE.
 */
export function selectServerGroup(preference: GroupPreference, hello: ClientHello, protocol: string, cipherName?: string): string {
  if (protocol === 'TLSv1.3') return selectTls13Group(preference, hello);

  if (protocol === 'TLSv1.2') {
    if (cipherName !== undefined && !cipherName.startsWith('ECDHE')) return 'unknown';
    return selectTls12Group(preference, hello);
  }

  return 'unknown';
}

function selectTls13Group(preference: GroupPreference, hello: ClientHello): string {
  const clientGroups = hello.supportedGroups ?? [];

  for (const tuple of preference) {
    const shared = tuple.filter((group) => clientGroups.includes(group));
    if (shared.length === 0) continue;

    const withKeyShare = shared.find((group) => hello.keyShareGroups.includes(group));
    return groupName(withKeyShare ?? shared[0]!);
  }

  return 'unknown';
}

function selectTls12Group(preference: GroupPreference, hello: ClientHello): string {
  const serverGroups = preference.flat().filter((group) => TLS12_ECDHE_GROUPS.has(group));
  const selected = hello.supportedGroups === undefined
    ? serverGroups[0]
    : serverGroups.find((group) => hello.supportedGroups!.includes(group));

  return selected === undefined ? 'unknown' : groupName(selected);
}

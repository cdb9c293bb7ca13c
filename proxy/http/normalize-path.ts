import { HttpError } from './errors.ts';

/** A normalized request target: the form policy evaluates and the form forwarded upstream. */
export interface NormalizedTarget {
  /** Normalized path; `*` only for `OPTIONS *`. */
  readonly path: string;
  /** Query string without the leading `?`, unchanged; empty when absent. */
  readonly query: string;
}

/** Maximum request target length accepted, in characters. */
export const MAX_TARGET_LENGTH = 8192;

/**
 * Characters allowed unencoded in a path segment (RFC 3986 section 3.3 `pchar`: unreserved,
 * sub-delims, ":" and "@"). Their escapes are decoded because upstream frameworks decode them
 * anyway: left encoded, `/%24everything` would slip past a policy rule on `$everything` and
 * still reach the upstream's `$everything` handler.
 */
const PATH_CHARACTER = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]$/;

/**
 * Normalizes an origin-form request target (RFC 9112 section 3.2.1) once, so that the path
 * policy matches is the path the upstream receives:
 *
 * 1. `%XX` escapes of characters allowed in a path segment are decoded (`%41` to `A`, `%2e` to
 *    `.`, `%24` to `$`); other escapes stay encoded with uppercase hex digits.
 * 2. Duplicate slashes collapse to one.
 * 3. Dot segments, literal or encoded, are resolved (RFC 3986 section 5.2.4); `..` never
 *    climbs above `/`.
 *
 * Encoded slashes (`%2F`) and backslashes (`%5C`), backslashes, NUL and other control
 * characters (raw or encoded), invalid escapes and targets longer than 8192 characters are
 * rejected, because upstreams disagree on what they mean. So is a `#` anywhere in the target,
 * because a fragment is never part of a request target.
 *
 * @param method request method; `*` is accepted only for OPTIONS.
 * @throws {HttpError} `WG_HTTP_BAD_TARGET` (absolute-form, authority-form, `#` in the query) or
 *   `WG_HTTP_BAD_PATH`, both 400.
 */
export function normalizePath(rawTarget: string, method = 'GET'): NormalizedTarget {
  if (typeof rawTarget !== 'string' || rawTarget.length === 0) {
    throw new HttpError('WG_HTTP_BAD_TARGET', `Request target is invalid: expected a path starting with "/", received ${JSON.stringify(rawTarget)}.`);
  }

  if (rawTarget.length > MAX_TARGET_LENGTH) {
    throw new HttpError('WG_HTTP_BAD_TARGET', `Request target is too long: the maximum is ${MAX_TARGET_LENGTH} characters, received ${rawTarget.length}.`);
  }

  if (rawTarget === '*') {
    if (method !== 'OPTIONS') throw new HttpError('WG_HTTP_BAD_TARGET', `Request target "*" is only valid with OPTIONS, received method ${method}.`);
    return Object.freeze({ path: '*', query: '' });
  }

  if (!rawTarget.startsWith('/')) {
    throw new HttpError('WG_HTTP_BAD_TARGET', `Request target is invalid: expected origin-form (a path starting with "/"), received ${JSON.stringify(truncate(rawTarget))}. Absolute-form and authority-form targets are not accepted.`);
  }

  const queryStart = rawTarget.indexOf('?');
  const rawPath = queryStart === -1 ? rawTarget : rawTarget.slice(0, queryStart);
  const query = queryStart === -1 ? '' : rawTarget.slice(queryStart + 1);
  assertNoControlCharacters(rawTarget);
  // A URL parser ends the query at "#", while the raw target goes upstream whole, so a fragment
  // could hide parameters (patient ids among them) from the scorer and the policy.
  if (query.includes('#')) {
    throw new HttpError('WG_HTTP_BAD_TARGET', `Request target is invalid: the query contains "#", which starts a fragment that clients never send; percent-encode it as %23, received ${JSON.stringify(truncate(rawTarget))}.`);
  }

  const decoded = decodePathCharacters(rawPath);
  const path = removeDotSegments(decoded.replace(/\/{2,}/g, '/'));

  return Object.freeze({ path, query });
}

/** Decodes escapes of path-segment characters and uppercases the others; rejects forbidden characters. */
function decodePathCharacters(rawPath: string): string {
  let result = '';

  for (let index = 0; index < rawPath.length; index++) {
    const character = rawPath[index]!;

    if (character === '\\') badPath(rawPath, 'a backslash');
    if (character === '#') badPath(rawPath, 'a fragment ("#")');
    if (character !== '%') {
      result += character;
      continue;
    }

    const hex = rawPath.slice(index + 1, index + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) badPath(rawPath, `an invalid escape "%${hex}"`);

    const code = Number.parseInt(hex, 16);
    if (code === 0x2f) badPath(rawPath, 'an encoded slash (%2F)');
    if (code === 0x5c) badPath(rawPath, 'an encoded backslash (%5C)');
    if (code < 0x20 || code === 0x7f) badPath(rawPath, `an encoded control character (%${hex.toUpperCase()})`);

    const decodedCharacter = String.fromCharCode(code);
    result += PATH_CHARACTER.test(decodedCharacter) ? decodedCharacter : `%${hex.toUpperCase()}`;
    index += 2;
  }

  return result;
}

/** RFC 3986 section 5.2.4 on a path that has no empty segments left. */
function removeDotSegments(path: string): string {
  const output: string[] = [];
  const segments = path.split('/').slice(1);

  segments.forEach((segment, index) => {
    const isLast = index === segments.length - 1;

    if (segment === '..') {
      output.pop();
      if (isLast) output.push('');
    } else if (segment === '.') {
      if (isLast) output.push('');
    } else {
      output.push(segment);
    }
  });

  return `/${output.join('/')}`;
}

function assertNoControlCharacters(rawTarget: string): void {
  // eslint-disable-next-line no-control-regex
  const match = /[\u0000-\u001f\u007f\u0080-\uffff ]/.exec(rawTarget);
  if (match !== null) {
    const codePoint = match[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    badPath(rawTarget, `the character U+${codePoint}, which must be percent-encoded or is forbidden`);
  }
}

function badPath(rawPath: string, what: string): never {
  throw new HttpError('WG_HTTP_BAD_PATH', `Request path ${JSON.stringify(truncate(rawPath))} is invalid: it contains ${what}. Send the path without it.`);
}

function truncate(value: string): string {
  return value.length > 200 ? `${value.slice(0, 200)}...` : value;
}

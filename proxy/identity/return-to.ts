import { IdentityError } from './errors.ts';

const MAX_RETURN_TO_LENGTH = 2048;

/**
 * Checks that a post-sign-in target is a same-origin path and returns it unchanged.
 * Rejects with `WG_AUTH_INVALID_RETURN_TO` anything a browser could resolve to another
 * origin: absolute URLs, scheme-relative `//host`, backslashes (`/\host`), control
 * characters, dot segments, and percent-encoded slashes, backslashes, dots or controls in the
 * path that a later decode could turn into one of these.
 */
export function assertReturnTo(raw: unknown): string {
  if (typeof raw !== 'string' || raw === '') {
    return reject(raw, 'a non-empty path');
  }
  if (raw.length > MAX_RETURN_TO_LENGTH) {
    return reject(raw, `at most ${MAX_RETURN_TO_LENGTH} characters`);
  }
  if (!raw.startsWith('/') || raw.startsWith('//')) {
    return reject(raw, 'a path starting with a single "/"');
  }
  // Browsers treat "\" as "/" in special schemes, and strip tab, CR and LF before parsing.
  if (/[\\\u0000-\u001f\u007f\s]/.test(raw)) {
    return reject(raw, 'a path without backslashes, whitespace or control characters');
  }
  // The query may carry encoded slashes, as in a search for "a/b". Only the path could be decoded into a new origin.
  const path = raw.split(/[?#]/, 1)[0];
  if (/%(2f|5c|0[0-9a-f]|1[0-9a-f]|7f|25|20)/i.test(path)) {
    return reject(raw, 'a path without percent-encoded "/", "\\", "%", spaces or control characters');
  }
  // A later normalization could collapse "/./" or "/../" next to another slash into "//host".
  if (path.split('/').some((segment) => /^(?:\.|%2e){1,2}$/i.test(segment))) {
    return reject(raw, 'a path without "." or ".." segments');
  }
  if (!/^[\x21-\x7e]+$/.test(raw)) {
    return reject(raw, 'a path of printable ASCII characters (percent-encode others)');
  }

  const resolved = new URL(raw, 'https://wardgate.invalid');
  if (resolved.origin !== 'https://wardgate.invalid') {
    return reject(raw, 'a same-origin path');
  }

  return raw;
}

function reject(raw: unknown, expected: string): never {
  const received = typeof raw === 'string' ? JSON.stringify(raw.slice(0, 100)) : typeof raw;
  throw new IdentityError('WG_AUTH_INVALID_RETURN_TO', `Query parameter "return_to" must be ${expected}, received ${received}. Link to the sign-in page with a path on this site.`);
}

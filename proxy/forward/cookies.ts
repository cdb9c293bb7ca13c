/** Cookie names reserved for Wardgate itself; compared case-insensitively. */
const WARDGATE_COOKIE_PREFIX = '__host-wardgate';

function isWardgateCookie(name: string): boolean {
  return name.trim().toLowerCase().startsWith(WARDGATE_COOKIE_PREFIX);
}

/**
 * Removes Wardgate's own cookies (`__Host-wardgate*`) from a Cookie header value, so that
 * session ids never reach an upstream. Returns `undefined` when no cookie is left.
 */
export function removeWardgateCookies(cookieHeader: string | string[] | undefined): string | undefined {
  if (cookieHeader === undefined) return undefined;

  const pairs = (Array.isArray(cookieHeader) ? cookieHeader.join('; ') : cookieHeader).split(';');
  const kept = pairs.map((pair) => pair.trim()).filter((pair) => pair !== '' && !isWardgateCookie(pair.split('=')[0]!));

  return kept.length === 0 ? undefined : kept.join('; ');
}

/**
 * Removes Set-Cookie entries whose cookie name starts with `__Host-wardgate` (any case), so
 * that an upstream cannot plant or overwrite a Wardgate session. Returns `undefined` when none is left.
 */
export function removeWardgateSetCookies(setCookie: string | string[] | undefined): string[] | undefined {
  if (setCookie === undefined) return undefined;

  const kept = (Array.isArray(setCookie) ? setCookie : [setCookie]).filter((entry) => !isWardgateCookie(entry.split('=')[0]!));

  return kept.length === 0 ? undefined : kept;
}

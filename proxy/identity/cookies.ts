import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** Session cookie; the `__Host-` prefix makes browsers require Secure, Path=/ and no Domain. */
export const SESSION_COOKIE = '__Host-wardgate_session';
/** Name prefix of the cookies that bind login attempts to the browser that started them. */
export const BINDING_COOKIE = '__Host-wardgate_login';

/**
 * Returns the binding cookie name of one login attempt. Each attempt has its own cookie, because
 * tabs that start a sign-in at the same moment would overwrite a shared one, and only the
 * last tab could then complete.
 */
export function bindingCookieName(state: string): string {
  return `${BINDING_COOKIE}_${createHash('sha256').update(state).digest('base64url').slice(0, 12)}`;
}
/** Binds a shared sign-in hand-off to the browser that asked for it on the target host. */
export const HANDOFF_COOKIE = '__Host-wardgate_handoff';

/**
 * Reads one cookie from the Cookie header. Returns undefined when the cookie is absent
 * or appears more than once, because a duplicate may be a cookie injected by a sibling domain.
 */
export function readCookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) {
    return undefined;
  }

  const values: string[] = [];
  for (const pair of header.split(';')) {
    const separator = pair.indexOf('=');
    if (separator !== -1 && pair.slice(0, separator).trim() === name) {
      values.push(pair.slice(separator + 1).trim());
    }
  }

  return values.length === 1 ? values[0] : undefined;
}

/** Returns the names of the binding cookies of sign-ins in progress that the request carries. */
export function pendingBindingCookies(req: IncomingMessage): string[] {
  const names = (req.headers.cookie ?? '').split(';').map((pair) => pair.split('=')[0].trim());
  return names.filter((name) => name.startsWith(`${BINDING_COOKIE}_`));
}

/** Serializes a `__Host-` cookie: Secure, HttpOnly, SameSite=Lax, Path=/. `maxAgeS` 0 deletes it. */
export function hostCookie(name: string, value: string, maxAgeS: number): string {
  return `${name}=${value}; Max-Age=${maxAgeS}; Path=/; Secure; HttpOnly; SameSite=Lax`;
}

/** Adds a Set-Cookie header without dropping ones already set on the response. */
export function appendSetCookie(res: { getHeader(name: string): unknown; setHeader(name: string, value: string[]): unknown }, cookie: string): void {
  const existing = res.getHeader('set-cookie');
  const list = existing === undefined ? [] : Array.isArray(existing) ? existing.map(String) : [String(existing)];
  res.setHeader('set-cookie', [...list, cookie]);
}

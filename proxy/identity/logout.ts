import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { KeyValueStore } from '../state/key-value-store.ts';
import { appendSetCookie, hostCookie, readCookie, SESSION_COOKIE } from './cookies.ts';
import { IdentityError } from './errors.ts';
import { MAX_LOGOUT_TOKEN_AGE_S, type OidcClient } from './oidc-client.ts';
import { escapeHtml, sendPage } from './pages.ts';
import { requestOrigin } from './request-kind.ts';
import type { SessionSockets } from './session-sockets.ts';
import type { SessionStore } from './session-store.ts';

export const LOGOUT_PATH = '/.wardgate/logout';
/** Path of the `post_logout_redirect_uri`, where the IdP sends the browser after RP-initiated logout. */
export const LOGGED_OUT_PATH = '/.wardgate/logged-out';
/** OpenID Connect Back-Channel Logout 1.0 endpoint; the IdP posts `logout_token` here. */
export const BACKCHANNEL_LOGOUT_PATH = '/.wardgate/backchannel-logout';

const MAX_FORM_BYTES = 16 * 1024;

export interface LogoutContext {
  readonly client: OidcClient;
  readonly sessions: SessionStore;
  readonly sockets: SessionSockets;
  readonly store: KeyValueStore;
  readonly now: () => number;
  /** Whether a host may appear in redirect URIs sent to the IdP; every host when absent. */
  readonly isSignInHost?: (host: string) => boolean;
}

/** Sends the sign-out form, carrying the session's CSRF token, or a notice when no session is active. */
export async function sendLogoutForm(context: LogoutContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const sessionId = readCookie(req, SESSION_COOKIE);
  const record = sessionId === undefined ? null : await context.sessions.load(sessionId, context.now());
  if (record === null || record.csrf_token === undefined) {
    sendPage(res, 200, 'Not signed in', ['You are not signed in to Wardgate.'], { href: '/.wardgate/login?return_to=%2F', text: 'Sign in' });
    return;
  }

  res.statusCode = 200;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.setHeader('content-security-policy', "default-src 'none'; form-action 'self' https:; frame-ancestors 'none'");
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign out</title></head><body><h1>Sign out</h1><form method="post" action="${escapeHtml(LOGOUT_PATH)}"><input type="hidden" name="csrf_token" value="${escapeHtml(record.csrf_token)}"><button type="submit">Sign out of Wardgate</button></form></body></html>`);
}

/**
 * Signs a browser out. It first checks that the form comes from this origin (header `Origin`,
 * or `Sec-Fetch-Site: same-origin` when a browser sends no Origin) and carries the session's
 * CSRF token. It then deletes the session, closes its WebSockets, clears the cookie and sends
 * the browser to the IdP's end_session_endpoint with `id_token_hint` and
 * `post_logout_redirect_uri`.
 */
export async function logout(context: LogoutContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const origin = requestOrigin(req);
  const fetchSite = req.headers['sec-fetch-site'];
  const sameOrigin = req.headers.origin === undefined ? fetchSite === 'same-origin' : req.headers.origin === origin;
  if (!sameOrigin) {
    throw new IdentityError('WG_AUTH_CSRF_REJECTED', `Sign-out must come from a page of ${origin}: header "Origin" is ${JSON.stringify(req.headers.origin ?? null)} and "Sec-Fetch-Site" is ${JSON.stringify(fetchSite ?? null)}. Use the sign-out button on this site.`);
  }

  const form = await readForm(req);
  const sessionId = readCookie(req, SESSION_COOKIE);
  const record = sessionId === undefined ? null : await context.sessions.load(sessionId, context.now());
  if (record !== null && !sameToken(form.get('csrf_token') ?? '', record.csrf_token ?? '')) {
    throw new IdentityError('WG_AUTH_CSRF_REJECTED', `Sign-out form field "csrf_token" is ${form.has('csrf_token') ? 'wrong' : 'missing'}. Open ${origin}${LOGOUT_PATH} and use its sign-out button.`);
  }

  if (sessionId !== undefined) {
    try {
      await context.sessions.delete(sessionId);
    } finally {
      context.sockets.close([sessionId]);
    }
  }
  appendSetCookie(res, hostCookie(SESSION_COOKIE, '', 0));

  // The return address is built from the Host header, so it is sent only for a known host.
  const knownHost = context.isSignInHost?.(origin.slice('https://'.length).replace(/:\d+$/, '')) ?? true;
  const endSession = record === null || !knownHost ? undefined : context.client.endSessionUrl(record.id_token, `${origin}${LOGGED_OUT_PATH}`);
  if (endSession === undefined) {
    sendPage(res, 200, 'Signed out', ['You are signed out of Wardgate.'], { href: '/.wardgate/login?return_to=%2F', text: 'Sign in again' });
    return;
  }

  res.statusCode = 303;
  res.setHeader('location', endSession);
  res.setHeader('cache-control', 'no-store');
  res.end();
}

/** Page shown when the IdP returns the browser after RP-initiated logout. */
export function sendLoggedOutPage(res: ServerResponse): void {
  sendPage(res, 200, 'Signed out', ['You are signed out of Wardgate and of the sign-in service.'], { href: '/.wardgate/login?return_to=%2F', text: 'Sign in again' });
}

/**
 * Handles a back-channel logout request (OpenID Connect Back-Channel Logout 1.0 section 2.5):
 * verifies the `logout_token`, rejects a `jti` seen before, deletes the matching sessions and
 * closes their WebSockets. Responds 200 on success and 400 with a JSON error otherwise
 * (section 2.8), always with `Cache-Control: no-store`.
 */
export async function backchannelLogout(context: LogoutContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  res.setHeader('cache-control', 'no-store');
  try {
    const contentType = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (contentType !== 'application/x-www-form-urlencoded') {
      throw new IdentityError('WG_AUTH_LOGOUT_TOKEN_INVALID', `Back-channel logout must be a form post (Content-Type application/x-www-form-urlencoded), received ${JSON.stringify(contentType)}.`);
    }
    const tokens = (await readForm(req)).getAll('logout_token');
    if (tokens.length !== 1) {
      throw new IdentityError('WG_AUTH_LOGOUT_TOKEN_INVALID', `Form field "logout_token" must appear exactly once, received ${tokens.length}.`);
    }

    const claims = await context.client.verifyLogoutToken(tokens[0], Math.floor(context.now() / 1000));
    const jtiKey = `logout-jti:${createHash('sha256').update(claims.jti).digest('base64url')}`;
    // One atomic SET NX, so that of two copies arriving at different instances only one passes.
    // The key outlives the token's accepted age, so a replay cannot come after it expires.
    if (!(await context.store.setIfAbsent(jtiKey, '1', (MAX_LOGOUT_TOKEN_AGE_S * 2 + 60) * 1000))) {
      throw new IdentityError('WG_AUTH_LOGOUT_TOKEN_INVALID', 'Logout token claim "jti" was already used; each logout token is accepted once.');
    }

    const ids = claims.sid !== undefined
      ? await context.sessions.revokeSid(claims.sid, claims.sub)
      : await context.sessions.revokeSubjectIds(claims.sub!);
    context.sockets.close(ids);

    res.statusCode = 200;
    res.end();
  } catch (error) {
    if (!(error instanceof IdentityError)) {
      throw error;
    }
    res.statusCode = error.code === 'WG_AUTH_METHOD_NOT_ALLOWED' ? 405 : 400;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ error: 'invalid_request', error_description: error.message }));
  }
}

/** Reads an urlencoded form body of at most 16 KiB. */
async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_FORM_BYTES) {
      throw new IdentityError('WG_AUTH_INVALID_CALLBACK', `The form body is larger than ${MAX_FORM_BYTES} bytes.`);
    }
    chunks.push(chunk as Buffer);
  }

  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function sameToken(received: string, expected: string): boolean {
  const left = Buffer.from(received);
  const right = Buffer.from(expected);
  return expected !== '' && left.length === right.length && timingSafeEqual(left, right);
}

import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { KeyValueStore } from '../state/key-value-store.ts';
import { appendSetCookie, HANDOFF_COOKIE, hostCookie, readCookie, SESSION_COOKIE } from './cookies.ts';
import { IdentityError } from './errors.ts';
import { bindingMatches, hashBinding } from './login-attempts.ts';
import type { SharedSignInOptions } from './options.ts';
import { requestOrigin } from './request-kind.ts';
import { assertReturnTo } from './return-to.ts';
import type { SessionRecord, SessionStore } from './session-store.ts';

/** On the sign-in host: issues a hand-off code for a target host, signing in first if needed. */
export const HANDOFF_START_PATH = '/.wardgate/handoff';
/** On the target host: redeems the code and sets that host's own session cookie. */
export const HANDOFF_COMPLETE_PATH = '/.wardgate/handoff/complete';

/** A hand-off code is usable once and only this long, since it only crosses one redirect. */
const HANDOFF_CODE_TTL_MS = 60_000;
/** The target host's binding cookie lives as long as a sign-in may take. */
const HANDOFF_BINDING_TTL_S = 600;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export interface HandoffContext {
  readonly sessions: SessionStore;
  readonly store: KeyValueStore;
  readonly shared: SharedSignInOptions | undefined;
  readonly absoluteLifetimeS: number;
  readonly now: () => number;
}

interface HandoffGrant {
  readonly target_host: string;
  readonly return_to: string;
  /** SHA-256 of the target host's binding cookie, so that only the browser that asked can redeem the code. */
  readonly binding_hash: string;
  readonly record: SessionRecord;
}

/**
 * Starts a shared sign-in from a host that has no session: sets a binding cookie on this host
 * and sends the browser to the sign-in host, which hands its session back through a one-time code.
 */
export async function startHandoffFromTarget(context: HandoffContext, req: IncomingMessage, res: ServerResponse, returnTo: string): Promise<void> {
  const shared = assertShared(context);
  const { host, port } = splitOrigin(requestOrigin(req));
  const binding = randomBytes(32).toString('base64url');

  const location = new URL(`https://${hostWithPort(shared.sign_in_host, port)}${HANDOFF_START_PATH}`);
  location.searchParams.set('target', host);
  location.searchParams.set('return_to', returnTo);
  location.searchParams.set('binding', hashBinding(binding));

  appendSetCookie(res, hostCookie(HANDOFF_COOKIE, binding, HANDOFF_BINDING_TTL_S));
  redirect(res, location.href);
}

/**
 * Serves `/.wardgate/handoff?target=<host>&return_to=<path>&binding=<hash>` on the sign-in host.
 * With a live session it stores a one-time code holding a copy of the session for the target
 * host and redirects there. Without one it signs the browser in first and comes back here.
 */
export async function startHandoff(context: HandoffContext, req: IncomingMessage, res: ServerResponse, url: URL, signIn: (returnTo: string) => Promise<void>): Promise<void> {
  const shared = assertShared(context);
  const { host, port } = splitOrigin(requestOrigin(req));
  const target = single(url, 'target');
  const returnTo = assertReturnTo(single(url, 'return_to'));
  const bindingHash = single(url, 'binding');
  if (host !== shared.sign_in_host) {
    throw new IdentityError('WG_AUTH_HANDOFF_INVALID', `Shared sign-in starts on ${shared.sign_in_host}, but this request came to ${host}. Open the application again.`);
  }
  if (!shared.hosts.includes(target) || target === shared.sign_in_host) {
    throw new IdentityError('WG_AUTH_HANDOFF_INVALID', `Query parameter "target" is ${JSON.stringify(target.slice(0, 100))}, expected one of the other shared sign-in hosts (${shared.hosts.filter((h) => h !== shared.sign_in_host).join(', ')}).`);
  }
  if (!TOKEN_PATTERN.test(bindingHash)) {
    throw new IdentityError('WG_AUTH_HANDOFF_INVALID', 'Query parameter "binding" is missing or malformed. Open the application again.');
  }

  const now = context.now();
  const sessionId = readCookie(req, SESSION_COOKIE);
  const record = sessionId === undefined ? null : await context.sessions.load(sessionId, now);
  if (record === null) {
    await signIn(`${url.pathname}${url.search}`);
    return;
  }

  const code = randomBytes(32).toString('base64url');
  const grant: HandoffGrant = { target_host: target, return_to: returnTo, binding_hash: bindingHash, record };
  await context.store.set(codeKey(code), JSON.stringify(grant), HANDOFF_CODE_TTL_MS);

  const location = new URL(`https://${hostWithPort(target, port)}${HANDOFF_COMPLETE_PATH}`);
  location.searchParams.set('code', code);
  redirect(res, location.href);
}

/**
 * Serves `/.wardgate/handoff/complete?code=<code>` on the target host. It takes the code (once)
 * and checks that it was issued for this host and this browser. Then it stores a session of its
 * own with the same subject, claims and end of life (but no step-up elevations), and sets the
 * `__Host-` session cookie here.
 */
export async function completeHandoff(context: HandoffContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const { host } = splitOrigin(requestOrigin(req));
  const code = single(url, 'code');
  const grant = TOKEN_PATTERN.test(code) ? parseGrant(await context.store.take(codeKey(code))) : null;
  if (grant === null) {
    throw new IdentityError('WG_AUTH_HANDOFF_INVALID', 'This shared sign-in link has expired or was already used. Open the application again.');
  }
  if (grant.target_host !== host) {
    throw new IdentityError('WG_AUTH_HANDOFF_INVALID', `This shared sign-in link was issued for ${grant.target_host}, not ${host}. Open the application again.`);
  }
  if (!bindingMatches(readCookie(req, HANDOFF_COOKIE), grant.binding_hash)) {
    throw new IdentityError('WG_AUTH_HANDOFF_INVALID', 'This shared sign-in was started in another browser (cookie "__Host-wardgate_handoff" missing or different). Open the application again in this browser.');
  }

  const now = context.now();
  if (grant.record.absolute_expires_at <= now) {
    throw new IdentityError('WG_AUTH_HANDOFF_INVALID', 'The session on the sign-in host ended before the shared sign-in completed. Open the application again.');
  }
  // Step-up elevations stay on the host where the second factor was given.
  const record: SessionRecord = { ...grant.record, elevations: [], csrf_token: randomBytes(32).toString('base64url') };
  const previousId = readCookie(req, SESSION_COOKIE);
  const sessionId = await context.sessions.rotate(previousId, record, now);

  appendSetCookie(res, hostCookie(HANDOFF_COOKIE, '', 0));
  appendSetCookie(res, hostCookie(SESSION_COOKIE, sessionId, Math.ceil((record.absolute_expires_at - now) / 1000)));
  redirect(res, grant.return_to);
}

function assertShared(context: HandoffContext): SharedSignInOptions {
  if (context.shared === undefined) {
    throw new IdentityError('WG_AUTH_HANDOFF_INVALID', 'Shared sign-in is not configured on this Wardgate (option "session.shared_sign_in").');
  }
  return context.shared;
}

function single(url: URL, name: string): string {
  const values = url.searchParams.getAll(name);
  if (values.length !== 1 || values[0].length > 2048) {
    throw new IdentityError('WG_AUTH_HANDOFF_INVALID', `Query parameter "${name}" must appear exactly once with at most 2048 characters, received ${values.length} values. Open the application again.`);
  }
  return values[0];
}

function splitOrigin(origin: string): { host: string; port: string | undefined } {
  const url = new URL(origin);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port === '' ? undefined : url.port };
}

function hostWithPort(host: string, port: string | undefined): string {
  const name = host.includes(':') ? `[${host}]` : host;
  return port === undefined ? name : `${name}:${port}`;
}

function redirect(res: ServerResponse, location: string): void {
  res.statusCode = 302;
  res.setHeader('location', location);
  res.setHeader('cache-control', 'no-store');
  res.end();
}

function codeKey(code: string): string {
  return `handoff:${code}`;
}

function parseGrant(raw: string | null): HandoffGrant | null {
  if (raw === null) {
    return null;
  }
  try {
    const grant = JSON.parse(raw) as HandoffGrant;
    return typeof grant.target_host === 'string' && typeof grant.return_to === 'string' && typeof grant.binding_hash === 'string' && typeof grant.record?.subject === 'string' ? grant : null;
  } catch {
    return null;
  }
}

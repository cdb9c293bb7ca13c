import type { IncomingMessage, ServerResponse } from 'node:http';

import { appendSetCookie, bindingCookieName, hostCookie, readCookie, SESSION_COOKIE } from './cookies.ts';
import { IdentityError } from './errors.ts';
import { bindingMatches, takeAttempt, type LoginAttempt } from './login-attempts.ts';
import type { IdTokenClaims, OidcClient } from './oidc-client.ts';
import type { OidcOptions, SessionOptions } from './options.ts';
import type { SavedRequestStore } from './saved-request.ts';
import type { SessionSockets } from './session-sockets.ts';
import type { Elevation, SessionRecord, SessionStore } from './session-store.ts';
import type { KeyValueStore } from '../state/key-value-store.ts';

export interface CallbackContext {
  readonly client: OidcClient;
  readonly oidc: OidcOptions;
  readonly session: SessionOptions;
  readonly sessions: SessionStore;
  readonly store: KeyValueStore;
  readonly savedRequests: SavedRequestStore;
  readonly sockets: SessionSockets;
  readonly now: () => number;
}

/**
 * Completes a sign-in or step-up at `/.wardgate/callback` (OpenID Connect Core 1.0
 * section 3.1.2.5). It takes the attempt for `state` and checks the browser binding and
 * the `iss` response parameter (RFC 9207). Then it exchanges the code with the PKCE
 * verifier, verifies the ID token, stores the session under a new id and redirects to the
 * saved target. Throws an {@link IdentityError} for every rejected callback.
 */
export async function completeSignIn(context: CallbackContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const params = readCallbackParams(url);
  if (params.state === undefined) {
    throw new IdentityError('WG_AUTH_STATE_UNKNOWN', 'Query parameter "state" is missing. Start the sign-in again.');
  }

  const unknownState = () => new IdentityError('WG_AUTH_STATE_UNKNOWN', 'This sign-in link has expired or was already used (unknown "state"). Start the sign-in again.');
  const peeked = await takeAttempt(context.store, params.state, { peek: true });
  if (peeked === null) throw unknownState();
  const bindingCookie = bindingCookieName(params.state);
  if (!bindingMatches(readCookie(req, bindingCookie), peeked.binding_hash)) {
    throw new IdentityError('WG_AUTH_BROWSER_MISMATCH', `This sign-in was started in another browser (cookie "${bindingCookie}" missing or different). Start the sign-in again in this browser.`);
  }
  // Taken only now, and still atomically, so two callbacks with the same state cannot both succeed.
  const attempt = await takeAttempt(context.store, params.state);
  if (attempt === null) throw unknownState();
  appendSetCookie(res, hostCookie(bindingCookie, '', 0));
  if (params.iss !== undefined && params.iss !== context.oidc.issuer) {
    throw new IdentityError('WG_AUTH_INVALID_CALLBACK', `Query parameter "iss" is ${JSON.stringify(params.iss.slice(0, 100))}, expected ${JSON.stringify(context.oidc.issuer)}. Start the sign-in again.`);
  }
  if (params.error !== undefined) {
    const detail = params.error_description === undefined ? '' : `: ${params.error_description.slice(0, 200)}`;
    throw new IdentityError('WG_AUTH_IDP_ERROR', `The identity provider returned error ${JSON.stringify(params.error.slice(0, 64))}${detail}. Start the sign-in again or contact the service desk.`);
  }
  if (params.code === undefined) {
    throw new IdentityError('WG_AUTH_INVALID_CALLBACK', 'Query parameter "code" is missing. Start the sign-in again.');
  }

  const tokens = await context.client.exchangeCode(params.code, attempt.redirect_uri, attempt.code_verifier);
  const now = context.now();
  const claims = await context.client.verifyIdToken(tokens.id_token, attempt.nonce, Math.floor(now / 1000));

  const previousId = readCookie(req, SESSION_COOKIE);
  const built = attempt.step_up === undefined
    ? newSessionRecord(context, claims, [], now)
    : await elevatedRecord(context, attempt, claims, previousId, now);
  const record: SessionRecord = { ...built, ...tokenFields(tokens.id_token, tokens.access_token, claims, now) };
  const sessionId = await context.sessions.rotate(previousId, record, now);
  if (previousId !== undefined) {
    context.sockets.rename(previousId, sessionId);
    if (attempt.saved_request !== undefined) {
      await context.savedRequests.rebind(attempt.saved_request, previousId, sessionId);
    }
  }

  appendSetCookie(res, hostCookie(SESSION_COOKIE, sessionId, context.session.absolute_lifetime_s));
  res.statusCode = 302;
  res.setHeader('location', attempt.return_to);
  res.setHeader('cache-control', 'no-store');
  res.end();
}

type CallbackParams = Partial<Record<'state' | 'code' | 'error' | 'error_description' | 'iss', string>>;

function readCallbackParams(url: URL): CallbackParams {
  const params: CallbackParams = {};
  for (const name of ['state', 'code', 'error', 'error_description', 'iss'] as const) {
    const values = url.searchParams.getAll(name);
    if (values.length > 1) {
      throw new IdentityError('WG_AUTH_INVALID_CALLBACK', `Query parameter "${name}" appears ${values.length} times, expected at most once. Start the sign-in again.`);
    }
    if (values.length === 1) {
      if (values[0].length > 4096) {
        throw new IdentityError('WG_AUTH_INVALID_CALLBACK', `Query parameter "${name}" is ${values[0].length} characters long, expected at most 4096.`);
      }
      params[name] = values[0];
    }
  }

  return params;
}

/**
 * Checks a step-up result and builds the elevated session. The ID token's `acr` must be one
 * of the requested `acr_values`, and `auth_time` must fall within `max_age` (plus clock skew)
 * or, for `max_age=0`, no earlier than the start of the step-up. The subject must be the
 * session's subject.
 */
async function elevatedRecord(context: CallbackContext, attempt: LoginAttempt, claims: IdTokenClaims, previousId: string | undefined, now: number): Promise<SessionRecord> {
  const requirement = attempt.step_up!;
  const skew = context.oidc.clock_skew_s ?? 30;
  const nowS = Math.floor(now / 1000);
  const requested = requirement.acr_values.split(' ');

  if (claims.acr === undefined || !requested.includes(claims.acr)) {
    throw new IdentityError('WG_AUTH_STEP_UP_FAILED', `Step-up requested acr ${JSON.stringify(requirement.acr_values)} but the ID token has acr ${claims.acr === undefined ? 'missing' : JSON.stringify(claims.acr)}. Try the stronger sign-in again.`);
  }
  if (claims.auth_time === undefined) {
    throw new IdentityError('WG_AUTH_STEP_UP_FAILED', 'Step-up ID token has no "auth_time" claim, so the age of the authentication is unknown. Try the stronger sign-in again.');
  }
  const earliest = requirement.max_age === 0 ? attempt.started_at_s - skew : nowS - requirement.max_age - skew;
  if (claims.auth_time < earliest || claims.auth_time > nowS + skew) {
    throw new IdentityError('WG_AUTH_STEP_UP_FAILED', `Step-up ID token has auth_time ${claims.auth_time}, expected between ${earliest} and ${nowS + skew} (max_age ${requirement.max_age}). Sign in again with your second factor.`);
  }

  const previous = previousId === undefined ? null : await context.sessions.load(previousId, now);
  if (previous !== null && previous.subject !== claims.sub) {
    throw new IdentityError('WG_AUTH_STEP_UP_FAILED', 'Step-up was completed by a different user than the one signed in. Sign out, then sign in as yourself.');
  }

  const elevation: Elevation = { acr: claims.acr, until: now + requirement.ttl * 1000 };
  if (previous === null) {
    return newSessionRecord(context, claims, [elevation], now);
  }

  return {
    ...previous,
    groups: claims.groups ?? previous.groups,
    ...authenticationFields(claims),
    elevations: [...previous.elevations.filter((e) => e.until > now), elevation],
  };
}

function newSessionRecord(context: CallbackContext, claims: IdTokenClaims, elevations: Elevation[], now: number): SessionRecord {
  return context.sessions.newRecord({
    subject: claims.sub,
    ...(claims.email === undefined ? {} : { email: claims.email }),
    ...(claims.name === undefined ? {} : { name: claims.name }),
    groups: claims.groups ?? [],
    ...authenticationFields(claims),
  }, elevations, now);
}

/** Keeps what logout and claims refresh need; the session record stays in the store, never in the cookie. */
function tokenFields(idToken: string, accessToken: string | undefined, claims: IdTokenClaims, now: number): Partial<SessionRecord> {
  return {
    id_token: idToken,
    ...(accessToken === undefined ? {} : { access_token: accessToken }),
    ...(claims.sid === undefined ? {} : { sid: claims.sid }),
    claims_refreshed_at: now,
  };
}

function authenticationFields(claims: IdTokenClaims): Pick<SessionRecord, 'acr' | 'amr' | 'auth_time'> {
  return {
    ...(claims.acr === undefined ? {} : { acr: claims.acr }),
    ...(claims.amr === undefined ? {} : { amr: claims.amr }),
    ...(claims.auth_time === undefined ? {} : { auth_time: claims.auth_time }),
  };
}

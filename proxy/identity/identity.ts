import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

import type { StepUpRequirement } from '../../policy/decision.ts';
import { StateError } from '../state/errors.ts';
import type { KeyValueStore } from '../state/key-value-store.ts';
import { replayBodyOf } from '../forward/replay-body.ts';
import { BearerVerifier } from './bearer.ts';
import { completeSignIn, type CallbackContext } from './callback.ts';
import { appendSetCookie, bindingCookieName, hostCookie, pendingBindingCookies, readCookie, SESSION_COOKIE } from './cookies.ts';
import { IdentityError, type IdentityErrorCode } from './errors.ts';
import { codeChallenge, hashBinding, LOGIN_ATTEMPT_TTL_MS, randomToken, saveAttempt } from './login-attempts.ts';
import { OidcClient } from './oidc-client.ts';
import { assertIdentityOptions, type IdentityOptions } from './options.ts';
import { refreshClaims, type RefreshContext } from './claims-refresh.ts';
import { completeHandoff, HANDOFF_COMPLETE_PATH, HANDOFF_START_PATH, startHandoff, startHandoffFromTarget, type HandoffContext } from './handoff.ts';
import { backchannelLogout, BACKCHANNEL_LOGOUT_PATH, LOGGED_OUT_PATH, LOGOUT_PATH, logout, sendLoggedOutPage, sendLogoutForm, type LogoutContext } from './logout.ts';
import { sendJsonError } from './pages.ts';
import { sendRouteError } from './route-errors.ts';
import type { Principal } from './principal.ts';
import { bearerChallenge, isApiClient, requestOrigin } from './request-kind.ts';
import { assertReturnTo } from './return-to.ts';
import { applySavedRequest, DEFAULT_MAX_SAVED_BODY_BYTES, REPLAY_PATH, SavedRequestStore } from './saved-request.ts';
import { SessionSockets } from './session-sockets.ts';
import { sessionPrincipal, SessionStore } from './session-store.ts';

/** Paths served by {@link Identity.handleWardgateRoute} on every routed host. */
export const LOGIN_PATH = '/.wardgate/login';
export const CALLBACK_PATH = '/.wardgate/callback';
export { BACKCHANNEL_LOGOUT_PATH, LOGGED_OUT_PATH, LOGOUT_PATH } from './logout.ts';
export { REPLAY_PATH } from './saved-request.ts';

/** The outcome of {@link Identity.authenticate}. */
export type AuthResult =
  | { readonly kind: 'authenticated'; readonly principal: Principal; readonly elevatedAcr: readonly string[] }
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'rejected'; readonly status: number; readonly code: IdentityErrorCode; readonly message: string; readonly wwwAuthenticate?: string };

/**
 * Sign-in, sessions, step-up and bearer tokens for the request pipeline.
 * Create one with {@link createIdentity}.
 */
export class Identity {
  readonly #options: IdentityOptions;
  readonly #client: OidcClient;
  readonly #bearer: BearerVerifier | undefined;
  readonly #sessions: SessionStore;
  readonly #store: KeyValueStore;
  readonly #now: () => number;
  readonly #sockets: SessionSockets;
  readonly #savedRequests: SavedRequestStore;

  constructor(options: IdentityOptions, client: OidcClient, bearer: BearerVerifier | undefined) {
    this.#options = options;
    this.#client = client;
    this.#bearer = bearer;
    this.#store = options.store;
    this.#sessions = new SessionStore(options.store, options.session, (ids) => this.#sockets.close(ids));
    this.#sockets = new SessionSockets({
      store: options.store,
      liveIds: (ids) => this.#sessions.liveIds(ids),
      ...(options.onBackgroundError === undefined ? {} : { onError: options.onBackgroundError }),
    });
    this.#now = options.now ?? Date.now;
    // NOTE: without a configured key, a request kept across a step-up cannot be replayed by
    // another instance or after a restart. The runtime warns about this at start-up.
    this.#savedRequests = new SavedRequestStore(options.store, options.saved_requests?.key ?? randomBytes(32), options.saved_requests?.max_body_bytes ?? DEFAULT_MAX_SAVED_BODY_BYTES);
  }

  /**
   * Subscribes to the session events of other instances and starts the re-check of open
   * WebSockets. {@link createIdentity} calls it.
   */
  async start(): Promise<void> {
    await this.#sockets.start();
  }

  /** Stops what {@link start} started; call it before closing the store. */
  async close(): Promise<void> {
    await this.#sockets.stop();
  }

  /**
   * Deletes every session of `subject`, closes their WebSockets on every instance, and returns
   * how many sessions were deleted. The review queue calls this to revoke a user's access.
   */
  async revokeSubject(subject: string): Promise<number> {
    return this.#sessions.revokeSubject(subject);
  }

  /** Registers an upgraded connection of a session, so that the end of the session closes it. */
  trackSocket(sessionId: string, socket: Duplex): void {
    this.#sockets.add(sessionId, socket);
  }

  /** Returns the number of open WebSockets of a session on this instance. */
  openSockets(sessionId: string): number {
    return this.#sockets.count(sessionId);
  }

  /**
   * Serves `/.wardgate/login` (GET, query `return_to`), `/.wardgate/callback` (GET),
   * `/.wardgate/logout` (GET shows a form, POST signs out), `/.wardgate/logged-out`,
   * `/.wardgate/backchannel-logout` (POST from the IdP) and the shared sign-in hand-off paths.
   * Returns false without touching `res` for any other path. `url` is the request URL with its
   * normalized path.
   */
  async handleWardgateRoute(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    if (!WARDGATE_PATHS.has(url.pathname)) {
      return false;
    }

    try {
      if (url.pathname === LOGIN_PATH) {
        assertMethod(req, res, ['GET', 'HEAD']);
        const returnTo = url.searchParams.getAll('return_to');
        if (returnTo.length > 1) {
          throw new IdentityError('WG_AUTH_INVALID_RETURN_TO', `Query parameter "return_to" appears ${returnTo.length} times, expected at most once.`);
        }
        await this.#redirectToIdp(req, res, assertReturnTo(returnTo[0] ?? '/'), undefined);
      } else if (url.pathname === CALLBACK_PATH) {
        assertMethod(req, res, ['GET']);
        await completeSignIn(this.#callbackContext(), req, res, url);
      } else if (url.pathname === BACKCHANNEL_LOGOUT_PATH) {
        assertMethod(req, res, ['POST']);
        await backchannelLogout(this.#logoutContext(), req, res);
      } else if (url.pathname === LOGGED_OUT_PATH) {
        assertMethod(req, res, ['GET', 'HEAD']);
        sendLoggedOutPage(res);
      } else if (url.pathname === HANDOFF_START_PATH) {
        assertMethod(req, res, ['GET']);
        await startHandoff(this.#handoffContext(), req, res, url, (returnTo) => this.#redirectToIdp(req, res, returnTo, undefined));
      } else if (url.pathname === HANDOFF_COMPLETE_PATH) {
        assertMethod(req, res, ['GET']);
        await completeHandoff(this.#handoffContext(), req, res, url);
      } else if (url.pathname === REPLAY_PATH) {
        // Reached only when the pipeline did not restore the request first.
        throw new IdentityError('WG_AUTH_SAVED_REQUEST_UNKNOWN', 'This saved form cannot be sent from here. Go back to the application and send it again.');
      } else if (req.method === 'GET' || req.method === 'HEAD') {
        await sendLogoutForm(this.#logoutContext(), req, res);
      } else {
        assertMethod(req, res, ['POST']);
        await logout(this.#logoutContext(), req, res);
      }
    } catch (error) {
      sendRouteError(res, error, url.pathname === LOGOUT_PATH || url.pathname === BACKCHANNEL_LOGOUT_PATH ? 'Sign-out' : 'Sign-in');
    }

    return true;
  }

  /**
   * Finds who is calling. A request with an Authorization header is judged by its bearer
   * token alone; otherwise the session cookie decides. A missing, unknown or expired session
   * is `anonymous`; a bad token, or a store that does not respond, is `rejected`.
   */
  async authenticate(req: IncomingMessage, options: { readonly keepClaimsWhenIdpDown?: boolean } = {}): Promise<AuthResult> {
    const now = this.#now();
    const authorization = req.headers.authorization;

    try {
      if (authorization !== undefined) {
        return { kind: 'authenticated', principal: await this.#verifyBearer(authorization, now), elevatedAcr: [] };
      }

      const sessionId = readCookie(req, SESSION_COOKIE);
      if (sessionId === undefined) {
        return { kind: 'anonymous' };
      }
      const loaded = await this.#sessions.load(sessionId, now);
      const record = loaded === null ? null : await refreshClaims(this.#refreshContext(), sessionId, loaded, now).catch((error: unknown) => {
        // An IdP outage keeps the claims already held only where the route's fail mode allows it.
        if (options.keepClaimsWhenIdpDown === true && error instanceof IdentityError && error.code === 'WG_AUTH_IDP_UNAVAILABLE') return loaded;
        throw error;
      });
      if (record === null) {
        return { kind: 'anonymous' };
      }

      return { kind: 'authenticated', ...sessionPrincipal(sessionId, record, now) };
    } catch (error) {
      return toRejected(error);
    }
  }

  /**
   * Sends an anonymous caller to sign in. Browsers get a 302 to the IdP and return to
   * `returnTo` (a same-origin path) afterwards; API clients get 401 with
   * `WWW-Authenticate: Bearer realm="wardgate"` (RFC 6750 section 3.1).
   */
  async sendLoginRedirect(req: IncomingMessage, res: ServerResponse, returnTo: string): Promise<void> {
    if (isApiClient(req)) {
      sendJsonError(res, 401, 'WG_AUTH_TOKEN_MISSING', 'This resource requires a bearer access token.', bearerChallenge());
      return;
    }

    try {
      const handoff = this.#options.shared_sign_in;
      const host = requestOrigin(req).slice('https://'.length).replace(/:\d+$/, '');
      if (handoff !== undefined && host !== handoff.sign_in_host && handoff.hosts.includes(host)) {
        await startHandoffFromTarget(this.#handoffContext(), req, res, assertReturnTo(returnTo));
        return;
      }
      await this.#redirectToIdp(req, res, assertReturnTo(returnTo), undefined);
    } catch (error) {
      sendRouteError(res, error);
    }
  }

  /**
   * Asks for a stronger or fresher authentication. Browsers get a 302 to the IdP with
   * `acr_values` and `max_age`; API clients get 401 with
   * `WWW-Authenticate: Bearer error="insufficient_user_authentication"` plus the same
   * parameters (RFC 9470 section 3).
   */
  async sendStepUp(req: IncomingMessage, res: ServerResponse, requirement: StepUpRequirement, returnTo: string): Promise<void> {
    if (isApiClient(req)) {
      const challenge = bearerChallenge({
        error: 'insufficient_user_authentication',
        error_description: 'A stronger or more recent authentication is required',
        acr_values: requirement.acr_values,
        max_age: requirement.max_age,
      });
      sendJsonError(res, 401, 'WG_AUTH_STEP_UP_REQUIRED', requirement.max_age === 0
        ? `This request requires a fresh authentication with acr ${requirement.acr_values}; sign in again with that method.`
        : `This request requires authentication with acr ${requirement.acr_values} no older than ${requirement.max_age} seconds.`, challenge);
      return;
    }

    try {
      const target = assertReturnTo(returnTo);
      const saved = req.method === 'POST' ? await this.#saveRequest(req, target) : undefined;
      await this.#redirectToIdp(req, res, saved === undefined ? target : `${REPLAY_PATH}?id=${saved}`, requirement, saved);
    } catch (error) {
      sendRouteError(res, error);
    }
  }

  /**
   * Restores a request kept across a step-up into `req` for `/.wardgate/replay?id=<id>`: its
   * method, path, content type and body replace the GET's, so the pipeline decides and forwards
   * it like the original. Returns false after sending an error page when the id is unknown,
   * expired, already used or saved by another session.
   */
  async restoreSavedRequest(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    try {
      assertMethod(req, res, ['GET']);
      const ids = url.searchParams.getAll('id');
      if (ids.length !== 1 || ids[0] === '') {
        throw new IdentityError('WG_AUTH_SAVED_REQUEST_UNKNOWN', `Query parameter "id" must appear exactly once with a value, got ${ids.length === 0 ? 'none' : ids.map((id) => JSON.stringify(id.slice(0, 64))).join(', ')}. Open the link Wardgate sent after the sign-in, or go back to the application and send the form again.`);
      }
      const sessionId = readCookie(req, SESSION_COOKIE);
      const saved = ids.length !== 1 || sessionId === undefined ? null : await this.#savedRequests.take(ids[0], sessionId);
      if (saved === null) {
        throw new IdentityError('WG_AUTH_SAVED_REQUEST_UNKNOWN', 'The form kept during your sign-in was already sent, has expired, or belongs to another sign-in, so nothing was sent now. Go back to the application and send the form again.');
      }

      applySavedRequest(req, saved);
      return true;
    } catch (error) {
      sendRouteError(res, error);
      return false;
    }
  }

  /** Sends the response for a `rejected` result from {@link authenticate}. */
  sendRejected(res: ServerResponse, result: Extract<AuthResult, { kind: 'rejected' }>): void {
    sendJsonError(res, result.status, result.code, result.message, result.wwwAuthenticate);
  }

  /** Keeps the body of a POST that needs a step-up and returns the saved request's id. */
  async #saveRequest(req: IncomingMessage, path: string): Promise<string | undefined> {
    const sessionId = readCookie(req, SESSION_COOKIE);
    if (sessionId === undefined) {
      return undefined;
    }

    const body = replayBodyOf(req) ?? await this.#savedRequests.readBody(req);
    const contentType = req.headers['content-type'];
    return this.#savedRequests.save(sessionId, { method: 'POST', path, ...(contentType === undefined ? {} : { content_type: contentType }), body });
  }

  async #redirectToIdp(req: IncomingMessage, res: ServerResponse, returnTo: string, stepUp: StepUpRequirement | undefined, savedRequest?: string): Promise<void> {
    const origin = requestOrigin(req);
    const host = origin.slice('https://'.length).replace(/:\d+$/, '');
    if (this.#options.isSignInHost !== undefined && !this.#options.isSignInHost(host)) {
      throw new IdentityError('WG_AUTH_INVALID_HOST', `Host ${JSON.stringify(host.slice(0, 100))} matches no route host and no name of the server certificate, so it cannot be used in the sign-in redirect_uri. Open the application at its configured host name.`);
    }
    const binding = randomToken();
    const state = randomToken();
    const nonce = randomToken();
    const verifier = randomToken();
    const redirectUri = `${origin}${CALLBACK_PATH}`;

    await saveAttempt(this.#store, state, {
      nonce,
      code_verifier: verifier,
      redirect_uri: redirectUri,
      return_to: returnTo,
      binding_hash: hashBinding(binding),
      started_at_s: Math.floor(this.#now() / 1000),
      ...(stepUp === undefined ? {} : { step_up: stepUp }),
      ...(savedRequest === undefined ? {} : { saved_request: savedRequest }),
    });

    const location = this.#client.authorizationUrl({
      redirect_uri: redirectUri,
      state,
      nonce,
      code_challenge: codeChallenge(verifier),
      ...(stepUp === undefined ? {} : { acr_values: stepUp.acr_values, max_age: stepUp.max_age }),
    });
    // Each attempt adds a cookie, so a browser that starts many sign-ins and finishes none would
    // send an ever longer Cookie header. Past the limit the older attempts are dropped.
    const pending = pendingBindingCookies(req);
    if (pending.length >= MAX_PENDING_SIGN_INS) {
      for (const name of pending) {
        appendSetCookie(res, hostCookie(name, '', 0));
      }
    }
    appendSetCookie(res, hostCookie(bindingCookieName(state), binding, LOGIN_ATTEMPT_TTL_MS / 1000));
    res.statusCode = 302;
    res.setHeader('location', location);
    res.setHeader('cache-control', 'no-store');
    res.end();
  }

  async #verifyBearer(authorization: string, now: number): Promise<Principal> {
    const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(authorization);
    if (match === null) {
      const scheme = authorization.split(' ')[0].slice(0, 20);
      const code = /^bearer$/i.test(scheme) ? 'WG_AUTH_TOKEN_INVALID' : 'WG_AUTH_TOKEN_MISSING';
      throw new IdentityError(code, `Header "Authorization" must be "Bearer <token>", received scheme ${JSON.stringify(scheme)} ${code === 'WG_AUTH_TOKEN_INVALID' ? 'with a malformed token' : ''}`.trimEnd() + '.');
    }
    if (this.#bearer === undefined) {
      throw new IdentityError('WG_AUTH_TOKEN_INVALID', 'Bearer tokens are not accepted here because no bearer issuer is configured. Sign in with a browser session.');
    }

    return this.#bearer.verify(match[1], Math.floor(now / 1000));
  }

  #callbackContext(): CallbackContext {
    return {
      client: this.#client,
      oidc: this.#options.oidc,
      session: this.#options.session,
      sessions: this.#sessions,
      store: this.#store,
      savedRequests: this.#savedRequests,
      sockets: this.#sockets,
      now: this.#now,
    };
  }

  #logoutContext(): LogoutContext {
    return {
      client: this.#client,
      sessions: this.#sessions,
      sockets: this.#sockets,
      store: this.#store,
      now: this.#now,
      ...(this.#options.isSignInHost === undefined ? {} : { isSignInHost: this.#options.isSignInHost }),
    };
  }

  #refreshContext(): RefreshContext {
    return {
      client: this.#client,
      sessions: this.#sessions,
      intervalS: this.#options.session.claims_refresh_interval_s,
      now: this.#now,
      onEnded: (sessionId) => this.#sockets.close([sessionId]),
    };
  }

  #handoffContext(): HandoffContext {
    return { sessions: this.#sessions, store: this.#store, shared: this.#options.shared_sign_in, now: this.#now, absoluteLifetimeS: this.#options.session.absolute_lifetime_s };
  }
}

/** Sign-ins in progress per browser before the older ones are dropped. */
const MAX_PENDING_SIGN_INS = 16;

const WARDGATE_PATHS = new Set([LOGIN_PATH, CALLBACK_PATH, '/.wardgate/logout', '/.wardgate/logged-out', '/.wardgate/backchannel-logout', '/.wardgate/handoff', '/.wardgate/handoff/complete', '/.wardgate/replay']);

/**
 * Validates the options, discovers the OpenID Provider and loads bearer key sets.
 * Throws `WG_AUTH_INVALID_OPTION` naming the bad option, or `WG_AUTH_DISCOVERY_FAILED` /
 * `WG_AUTH_ISSUER_MISMATCH` when the IdP cannot be used.
 */
export async function createIdentity(options: IdentityOptions): Promise<Identity> {
  assertIdentityOptions(options);

  const client = await OidcClient.discover(options.oidc);
  const bearer = options.bearer === undefined ? undefined : await BearerVerifier.create(options.bearer.issuers, options.bearer);

  const identity = new Identity(options, client, bearer);
  await identity.start();
  return identity;
}

function assertMethod(req: IncomingMessage, res: ServerResponse, allowed: readonly string[]): void {
  if (!allowed.includes(req.method ?? '')) {
    res.setHeader('allow', allowed.join(', '));
    throw new IdentityError('WG_AUTH_METHOD_NOT_ALLOWED', `Method ${req.method} is not allowed here, expected ${allowed.join(' or ')}.`);
  }
}

function toRejected(error: unknown): Extract<AuthResult, { kind: 'rejected' }> {
  if (error instanceof StateError) {
    return { kind: 'rejected', status: 503, code: 'WG_AUTH_STORE_UNAVAILABLE', message: 'The session store is unavailable. Try again shortly.' };
  }
  if (!(error instanceof IdentityError)) {
    throw error;
  }

  let wwwAuthenticate: string | undefined;
  if (error.code === 'WG_AUTH_TOKEN_MISSING') {
    wwwAuthenticate = bearerChallenge();
  } else if (error.code === 'WG_AUTH_TOKEN_INVALID' || error.code === 'WG_AUTH_TOKEN_EXPIRED') {
    wwwAuthenticate = bearerChallenge({ error: 'invalid_token', error_description: error.code === 'WG_AUTH_TOKEN_EXPIRED' ? 'The access token expired' : 'The access token is invalid' });
  }

  return { kind: 'rejected', status: error.status, code: error.code, message: error.message, ...(wwwAuthenticate === undefined ? {} : { wwwAuthenticate }) };
}

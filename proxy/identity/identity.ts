import type { IncomingMessage, ServerResponse } from 'node:http';

import type { StepUpRequirement } from '../../policy/decision.ts';
import { StateError } from '../state/errors.ts';
import type { KeyValueStore } from '../state/key-value-store.ts';
import { BearerVerifier } from './bearer.ts';
import { completeSignIn, type CallbackContext } from './callback.ts';
import { appendSetCookie, BINDING_COOKIE, hostCookie, readCookie, SESSION_COOKIE } from './cookies.ts';
import { IdentityError, type IdentityErrorCode } from './errors.ts';
import { codeChallenge, hashBinding, LOGIN_ATTEMPT_TTL_MS, randomToken, saveAttempt } from './login-attempts.ts';
import { OidcClient } from './oidc-client.ts';
import { assertIdentityOptions, type IdentityOptions } from './options.ts';
import { escapeHtml, sendJsonError, sendPage } from './pages.ts';
import type { Principal } from './principal.ts';
import { bearerChallenge, isApiClient, requestOrigin } from './request-kind.ts';
import { assertReturnTo } from './return-to.ts';
import { sessionPrincipal, SessionStore } from './session-store.ts';

/** Paths served by {@link Identity.handleWardgateRoute} on every routed host. */
export const LOGIN_PATH = '/.wardgate/login';
export const CALLBACK_PATH = '/.wardgate/callback';
export const LOGOUT_PATH = '/.wardgate/logout';

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

  constructor(options: IdentityOptions, client: OidcClient, bearer: BearerVerifier | undefined) {
    this.#options = options;
    this.#client = client;
    this.#bearer = bearer;
    this.#store = options.store;
    this.#sessions = new SessionStore(options.store, options.session);
    this.#now = options.now ?? Date.now;
  }

  /**
   * Serves `/.wardgate/login` (GET, query `return_to`), `/.wardgate/callback` (GET) and
   * `/.wardgate/logout` (GET shows a form, POST signs out). Returns false without touching
   * `res` for any other path. `url` is the request URL with its normalized path.
   */
  async handleWardgateRoute(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    if (url.pathname !== LOGIN_PATH && url.pathname !== CALLBACK_PATH && url.pathname !== LOGOUT_PATH) {
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
      } else if (req.method === 'GET' || req.method === 'HEAD') {
        sendLogoutForm(res);
      } else {
        assertMethod(req, res, ['POST']);
        await this.#logout(req, res);
      }
    } catch (error) {
      sendRouteError(res, error);
    }

    return true;
  }

  /**
   * Finds who is calling. A request with an Authorization header is judged by its bearer
   * token alone; otherwise the session cookie decides. A missing, unknown or expired session
   * is `anonymous`; a bad token, or a store that does not respond, is `rejected`.
   */
  async authenticate(req: IncomingMessage): Promise<AuthResult> {
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
      const record = await this.#sessions.load(sessionId, now);
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
      await this.#redirectToIdp(req, res, assertReturnTo(returnTo), requirement);
    } catch (error) {
      sendRouteError(res, error);
    }
  }

  /** Sends the response for a `rejected` result from {@link authenticate}. */
  sendRejected(res: ServerResponse, result: Extract<AuthResult, { kind: 'rejected' }>): void {
    sendJsonError(res, result.status, result.code, result.message, result.wwwAuthenticate);
  }

  async #redirectToIdp(req: IncomingMessage, res: ServerResponse, returnTo: string, stepUp: StepUpRequirement | undefined): Promise<void> {
    const origin = requestOrigin(req);
    const existing = readCookie(req, BINDING_COOKIE);
    // Reusing the binding keeps sign-ins started in two tabs of one browser both valid.
    const binding = existing !== undefined && /^[A-Za-z0-9_-]{43}$/.test(existing) ? existing : randomToken();
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
    });

    const location = this.#client.authorizationUrl({
      redirect_uri: redirectUri,
      state,
      nonce,
      code_challenge: codeChallenge(verifier),
      ...(stepUp === undefined ? {} : { acr_values: stepUp.acr_values, max_age: stepUp.max_age }),
    });
    appendSetCookie(res, hostCookie(BINDING_COOKIE, binding, LOGIN_ATTEMPT_TTL_MS / 1000));
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

  async #logout(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const origin = requestOrigin(req);
    const fetchSite = req.headers['sec-fetch-site'];
    const sameOrigin = req.headers.origin === undefined ? fetchSite === 'same-origin' : req.headers.origin === origin;
    if (!sameOrigin) {
      throw new IdentityError('WG_AUTH_CSRF_REJECTED', `Sign-out must come from a page of ${origin}: header "Origin" is ${JSON.stringify(req.headers.origin ?? null)} and "Sec-Fetch-Site" is ${JSON.stringify(fetchSite ?? null)}. Use the sign-out button on this site.`);
    }

    const sessionId = readCookie(req, SESSION_COOKIE);
    if (sessionId !== undefined) {
      await this.#sessions.delete(sessionId);
    }

    appendSetCookie(res, hostCookie(SESSION_COOKIE, '', 0));
    // NOTE: the IdP session stays, so the next sign-in may complete without a password prompt.
    sendPage(res, 200, 'Signed out', ['You are signed out of Wardgate.'], { href: `${LOGIN_PATH}?return_to=%2F`, text: 'Sign in again' });
  }

  #callbackContext(): CallbackContext {
    return {
      client: this.#client,
      oidc: this.#options.oidc,
      session: this.#options.session,
      sessions: this.#sessions,
      store: this.#store,
      now: this.#now,
    };
  }
}

/**
 * Validates the options, discovers the OpenID Provider and loads bearer key sets.
 * Throws `WG_AUTH_INVALID_OPTION` naming the bad option, or `WG_AUTH_DISCOVERY_FAILED` /
 * `WG_AUTH_ISSUER_MISMATCH` when the IdP cannot be used.
 */
export async function createIdentity(options: IdentityOptions): Promise<Identity> {
  assertIdentityOptions(options);

  const client = await OidcClient.discover(options.oidc);
  const bearer = options.bearer === undefined ? undefined : await BearerVerifier.create(options.bearer.issuers, options.bearer);

  return new Identity(options, client, bearer);
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

function sendRouteError(res: ServerResponse, error: unknown): void {
  if (error instanceof StateError) {
    sendPage(res, 503, 'Sign-in is unavailable', ['The session store is not responding. Try again in a minute.']);
    return;
  }
  if (!(error instanceof IdentityError)) {
    throw error;
  }

  const restart = { href: `${LOGIN_PATH}?return_to=%2F`, text: 'Start the sign-in again' };
  res.setHeader('x-wardgate-error', error.code);
  sendPage(res, error.status, error.status >= 500 ? 'Sign-in is unavailable' : 'Sign-in failed', [error.message, `Error code: ${error.code}`], restart);
}

function sendLogoutForm(res: ServerResponse): void {
  res.statusCode = 200;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.setHeader('content-security-policy', "default-src 'none'; form-action 'self'; frame-ancestors 'none'");
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign out</title></head><body><h1>Sign out</h1><form method="post" action="${escapeHtml(LOGOUT_PATH)}"><button type="submit">Sign out of Wardgate</button></form></body></html>`);
}

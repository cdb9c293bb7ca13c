import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';

import { createHttpsFetch } from '../../proxy/identity/https-fetch.ts';
import Provider, { interactionPolicy } from 'oidc-provider';

import { ACR_MFA, ACR_PASSWORD, createDemoAccounts, type DemoAccount } from './accounts.ts';
import { handleInteraction } from './interactions.ts';
import { totp } from './totp.ts';

export interface DemoIdpClient {
  readonly client_id: string;
  readonly client_secret: string;
  readonly redirect_uris: readonly string[];
  /** Allowed `post_logout_redirect_uri` values of RP-initiated logout. */
  readonly post_logout_redirect_uris?: readonly string[];
  /** OpenID Connect Back-Channel Logout 1.0 endpoint of the client; `sid` is always included. */
  readonly backchannel_logout_uri?: string;
}

/** Claims of a demo account that tests and demos may change while the IdP runs. */
export interface AccountChanges {
  readonly groups?: readonly string[];
  readonly email?: string;
  readonly name?: string;
}

export interface DemoIdpOptions {
  /** TCP port; 0 picks a free one. */
  readonly port: number;
  readonly host: string;
  /** Issuer URL; default `<scheme>://<host>:<port>` of the listening socket. */
  readonly issuer?: string;
  /** PEM key and certificate; without them the IdP speaks plain HTTP (loopback demos only). */
  readonly tls?: { readonly key: string; readonly cert: string };
  readonly clients: readonly DemoIdpClient[];
  /** Clock in milliseconds since the epoch, used for TOTP checks and `auth_time`; default `Date.now`. */
  readonly now?: () => number;
  /** PEM CA bundle trusted for back-channel logout requests to clients; default the system roots. */
  readonly clientCa?: string;
}

export interface DemoIdp {
  readonly issuer: string;
  readonly accounts: readonly DemoAccount[];
  /** Computes the TOTP code of a base32 secret at a time in milliseconds. */
  readonly totp: typeof totp;
  /** Changes an account's claims; the next token or userinfo response carries them. */
  updateAccount(username: string, changes: AccountChanges): void;
  /**
   * Signs a JWT with the IdP's signing key, for tests that need tokens the IdP would not issue
   * (for example a logout token with a `nonce`). Demo only.
   */
  signToken(payload: JWTPayload, typ?: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * Starts an in-memory OpenID Provider (oidc-provider 9) with three demo accounts, for
 * local demos and tests only. It issues `groups`, `acr`, `amr` and `auth_time` in ID tokens,
 * requires PKCE, and requires a TOTP code as well as the password when the client
 * requests `acr_values=urn:wardgate:acr:mfa`, `max_age=0` or `prompt=login`.
 */
export async function startDemoIdp(options: DemoIdpOptions): Promise<DemoIdp> {
  const accounts = createDemoAccounts();
  const changes = new Map<string, AccountChanges>();
  const now = options.now ?? Date.now;

  let handler: http.RequestListener = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = options.tls === undefined
    ? http.createServer((req, res) => handler(req, res))
    : https.createServer({ key: options.tls.key, cert: options.tls.cert }, (req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });

  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const issuer = options.issuer ?? `${options.tls === undefined ? 'http' : 'https'}://${host}:${port}`;
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKey = { ...await exportJWK(privateKey), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
  const claimsOf = (account: DemoAccount) => ({ email: account.email, name: account.name, groups: [...account.groups], ...changes.get(account.subject) });
  const provider = new Provider(issuer, providerConfiguration(options.clients, accounts, signingKey, claimsOf, options.clientCa));
  const callback = provider.callback();

  handler = (req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      handleInteraction(provider, accounts, req, res, now).catch(() => {
        if (!res.headersSent) {
          res.statusCode = 500;
        }
        res.end();
      });
      return;
    }
    callback(req, res);
  };

  return {
    issuer,
    accounts,
    totp,
    updateAccount: (username, update) => {
      const account = accounts.find((a) => a.username === username);
      if (account === undefined) {
        throw new Error(`No demo account "${username}"; the accounts are ${accounts.map((a) => a.username).join(', ')}.`);
      }
      changes.set(account.subject, { ...changes.get(account.subject), ...update });
    },
    signToken: (payload, typ = 'JWT') => new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: signingKey.kid, typ }).sign(privateKey),
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

function providerConfiguration(
  clients: readonly DemoIdpClient[],
  accounts: readonly DemoAccount[],
  signingKey: Record<string, unknown>,
  claimsOf: (account: DemoAccount) => { email: string; name: string; groups: readonly string[] },
  clientCa: string | undefined,
): Record<string, unknown> {
  const clientFetch = createHttpsFetch(clientCa);

  const policy = interactionPolicy.base();
  // oidc-provider treats acr_values as voluntary, so the demo adds the check that makes MFA mandatory when requested.
  policy.get('login')!.checks.add(new interactionPolicy.Check('acr_mfa', 'requested ACR could not be obtained', (ctx) => {
    const requested = typeof ctx.oidc.params.acr_values === 'string' ? ctx.oidc.params.acr_values.split(' ') : [];
    return requested.includes(ACR_MFA) && ctx.oidc.session.acr !== ACR_MFA;
  }));

  return {
    clients: clients.map((client) => ({
      client_id: client.client_id,
      client_secret: client.client_secret,
      redirect_uris: [...client.redirect_uris],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      require_auth_time: true,
      ...(client.post_logout_redirect_uris === undefined ? {} : { post_logout_redirect_uris: [...client.post_logout_redirect_uris] }),
      ...(client.backchannel_logout_uri === undefined ? {} : { backchannel_logout_uri: client.backchannel_logout_uri, backchannel_logout_session_required: true }),
    })),
    // oidc-provider refuses outgoing requests to loopback addresses, where the demo's Wardgate
    // listens, and global fetch cannot trust the demo CA; this fetch allows both. Demo only.
    fetch: (url: string, init: { method?: string; headers?: Headers; body?: URLSearchParams | string }) => clientFetch(String(url), {
      method: init.method,
      headers: init.headers,
      ...(init.body === undefined ? {} : { body: String(init.body) }),
    }),
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    pkce: { required: () => true },
    acrValues: [ACR_PASSWORD, ACR_MFA],
    scopes: ['openid', 'email', 'profile', 'groups'],
    // acr and amr sit in the openid scope so that every ID token carries them, not only those that request them.
    claims: { acr: null, amr: null, auth_time: null, sid: null, iss: null, openid: ['sub', 'acr', 'amr', 'auth_time'], email: ['email'], profile: ['name'], groups: ['groups'] },
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: false },
      backchannelLogout: { enabled: true },
      // Lets a client revoke its access token (RFC 7009), which ends its userinfo access.
      revocation: { enabled: true, allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId?: string }) => token.clientId === client.clientId },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
    },
    interactions: { policy, url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    findAccount: (_ctx: unknown, sub: string) => {
      const account = accounts.find((a) => a.subject === sub);
      return account === undefined ? undefined : {
        accountId: sub,
        claims: () => ({ sub, ...claimsOf(account) }),
      };
    },
    // Demo clients are first-party, so every sign-in gets a grant for all demo scopes without a consent page.
    loadExistingGrant: async (ctx: any) => {
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid email profile groups');
      grant.addOIDCClaims(['email', 'name', 'groups']);
      await grant.save();
      return grant;
    },
    renderError: (ctx: any, out: Record<string, string>) => {
      ctx.type = 'html';
      ctx.body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in error</title></head><body><h1>Sign-in error</h1><p>${String(out.error).replace(/[&<>"']/g, '')}: ${String(out.error_description ?? '').replace(/[&<>"']/g, '')}</p></body></html>`;
    },
  };
}

/** Renders the IdP's sign-out confirmation as a plain form that scripted browsers can submit. */
function logoutSource(ctx: any, form: string): void {
  const action = /action="([^"]+)"/.exec(form)?.[1] ?? '';
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(form)?.[1] ?? '';
  ctx.type = 'html';
  ctx.body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign out</title></head><body><h1>Sign out of the demo IdP?</h1><form method="post" action="${action}"><input type="hidden" name="xsrf" value="${xsrf}"><button type="submit" name="logout" value="yes">Yes, sign me out</button></form></body></html>`;
}

function postLogoutSuccessSource(ctx: any): void {
  ctx.type = 'html';
  ctx.body = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signed out</title></head><body><h1>Signed out</h1><p>You are signed out of the demo IdP.</p></body></html>';
}

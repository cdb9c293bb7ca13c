import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Redis } from 'ioredis';

import { startDemoIdp, type DemoIdp } from '../../demo/idp/idp.ts';
import { createIdentity, type Identity } from '../../proxy/identity/identity.ts';
import type { IdentityOptions } from '../../proxy/identity/options.ts';
import { RedisKeyValueStore } from '../../proxy/state/redis-key-value-store.ts';

export const REDIS_URL = 'redis://127.0.0.1:6379';

export interface TestCertificates {
  readonly ca: string;
  readonly key: string;
  readonly cert: string;
}

/** Creates a throwaway CA and a server certificate for 127.0.0.1 and localhost with the openssl CLI. */
export function createTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'wgtest-identity-'));
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  try {
    run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=wardgate test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
    run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
    writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
    run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'server.ext');
    return { ca: readFileSync(join(dir, 'ca.pem'), 'utf8'), key: readFileSync(join(dir, 'server.key'), 'utf8'), cert: readFileSync(join(dir, 'server.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface BrowserResponse {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
  readonly url: string;
}

interface StoredCookie {
  readonly value: string;
  readonly path: string;
}

/** A scripted browser: a cookie jar per host name (as browsers do, ports share cookies), manual or followed redirects. */
export class Browser {
  readonly #ca: string;
  readonly #jar = new Map<string, Map<string, StoredCookie>>();
  accept = 'text/html,application/xhtml+xml';

  constructor(ca: string) {
    this.#ca = ca;
  }

  cookie(url: string, name: string): string | undefined {
    const host = new URL(url).hostname;
    for (const [key, cookie] of this.#jar.get(host) ?? []) {
      if (key.split('\u0000')[0] === name) {
        return cookie.value;
      }
    }
    return undefined;
  }

  setCookie(url: string, name: string, value: string): void {
    this.#store(new URL(url), `${name}=${value}; Path=/`);
  }

  async request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<BrowserResponse> {
    const target = new URL(url);
    const body = init.form === undefined ? undefined : new URLSearchParams(init.form).toString();
    const headers: Record<string, string> = { accept: this.accept, ...init.headers };
    const cookieHeader = this.#cookieHeader(target);
    if (cookieHeader !== '') {
      headers.cookie = cookieHeader;
    }
    if (body !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = String(Buffer.byteLength(body));
    }

    return new Promise((resolve, reject) => {
      const request = https.request(target, { method: init.method ?? (body === undefined ? 'GET' : 'POST'), headers, ca: this.#ca, agent: false }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          for (const line of response.headers['set-cookie'] ?? []) {
            this.#store(target, line);
          }
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8'), url });
        });
      });
      request.on('error', reject);
      request.end(body);
    });
  }

  /** Follows redirects from `response` (at most 10) and returns the first non-redirect response. */
  async follow(response: BrowserResponse): Promise<BrowserResponse> {
    let current = response;
    for (let hops = 0; hops < 10 && current.status >= 300 && current.status < 400; hops += 1) {
      current = await this.request(new URL(String(current.headers.location), current.url).href);
    }
    return current;
  }

  /** Fills and posts the first form of an HTML page. */
  async submitForm(page: BrowserResponse, fields: Record<string, string>): Promise<BrowserResponse> {
    const action = /<form method="post" action="([^"]+)"/.exec(page.body)?.[1];
    if (action === undefined) {
      throw new Error(`No form in the page from ${page.url} (status ${page.status}): ${page.body.slice(0, 300)}`);
    }
    return this.request(new URL(action.replace(/&#(\d+);/g, (_m, c: string) => String.fromCharCode(Number(c))), page.url).href, { form: fields });
  }

  #cookieHeader(target: URL): string {
    const pairs: string[] = [];
    for (const [key, cookie] of this.#jar.get(target.hostname) ?? []) {
      if (target.pathname.startsWith(cookie.path)) {
        pairs.push(`${key.split('\u0000')[0]}=${cookie.value}`);
      }
    }
    return pairs.join('; ');
  }

  #store(origin: URL, line: string): void {
    const [pair, ...attributes] = line.split(';').map((part) => part.trim());
    const separator = pair.indexOf('=');
    const name = pair.slice(0, separator);
    const value = pair.slice(separator + 1);
    const path = attributes.find((a) => /^path=/i.test(a))?.slice(5) ?? '/';
    const expired = attributes.some((a) => /^max-age=0$/i.test(a) || (/^expires=/i.test(a) && Date.parse(a.slice(8)) < Date.now()));
    const jar = this.#jar.get(origin.hostname) ?? new Map<string, StoredCookie>();
    this.#jar.set(origin.hostname, jar);
    if (expired || value === '') {
      jar.delete(`${name}\u0000${path}`);
    } else {
      jar.set(`${name}\u0000${path}`, { value, path });
    }
  }
}

export type AppHandler = (identity: Identity, req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>;

export interface Stack {
  readonly idp: DemoIdp;
  readonly identity: Identity;
  readonly store: RedisKeyValueStore;
  readonly rpOrigin: string;
  readonly certs: TestCertificates;
  readonly keyPrefix: string;
  close(): Promise<void>;
}

/**
 * Starts the demo IdP over TLS, a relying-party HTTPS server on port 0 that calls the identity
 * API the way the pipeline will, and a Redis store under a random `wgtest:identity:` prefix.
 */
export async function startStack(app: AppHandler, overrides: Partial<IdentityOptions> = {}): Promise<Stack> {
  const certs = createTestCertificates();
  let identity: Identity | undefined;
  const rp = https.createServer({ key: certs.key, cert: certs.cert }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://wardgate.invalid');
    void (async () => {
      if (identity === undefined) {
        res.statusCode = 503;
        res.end();
        return;
      }
      if (await identity.handleWardgateRoute(req, res, url)) {
        return;
      }
      await app(identity, req, res, url);
    })().catch((error: unknown) => {
      res.statusCode = 500;
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve) => rp.listen(0, '127.0.0.1', resolve));
  const rpOrigin = `https://127.0.0.1:${(rp.address() as AddressInfo).port}`;

  const idp = await startDemoIdp({
    port: 0,
    host: '127.0.0.1',
    tls: { key: certs.key, cert: certs.cert },
    clients: [{
      client_id: 'wardgate',
      client_secret: 'test-client-secret',
      redirect_uris: [`${rpOrigin}/.wardgate/callback`],
      post_logout_redirect_uris: [`${rpOrigin}/.wardgate/logged-out`],
      backchannel_logout_uri: `${rpOrigin}/.wardgate/backchannel-logout`,
    }],
    clientCa: certs.ca,
  });
  const keyPrefix = `wgtest:identity:${randomBytes(6).toString('hex')}:`;
  const store = await RedisKeyValueStore.connect({ target: REDIS_URL, keyPrefix });
  identity = await createIdentity({
    oidc: { issuer: idp.issuer, client_id: 'wardgate', client_secret: 'test-client-secret', ca: certs.ca },
    session: { idle_timeout_s: 900, absolute_lifetime_s: 3600 },
    store,
    ...overrides,
  });

  return {
    idp,
    identity,
    store,
    rpOrigin,
    certs,
    keyPrefix,
    close: async () => {
      await deleteKeys(keyPrefix);
      await store.close();
      await idp.close();
      await new Promise<void>((resolve) => {
        rp.close(() => resolve());
        rp.closeAllConnections();
      });
    },
  };
}

/** Deletes every Redis key under a test prefix. */
export async function deleteKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) {
      await redis.del(...keys);
    }
  } finally {
    redis.disconnect();
  }
}

/** Counts Redis keys under a prefix matching a pattern such as `session:*`. */
export async function countKeys(prefix: string, pattern: string): Promise<number> {
  const redis = new Redis(REDIS_URL);
  try {
    return (await redis.keys(`${prefix}${pattern}`)).length;
  } finally {
    redis.disconnect();
  }
}

/**
 * The relying-party app used by the flow tests: `/whoami` returns the authentication result,
 * `/protected` sends anonymous callers to sign in, `/sensitive` requests an MFA step-up with
 * `max_age` from the query unless the session holds that elevation.
 */
export const testApp: AppHandler = async (identity, req, res, url) => {
  const result = await identity.authenticate(req);
  if (result.kind === 'rejected') {
    identity.sendRejected(res, result);
    return;
  }

  if (url.pathname === '/protected' && result.kind === 'anonymous') {
    await identity.sendLoginRedirect(req, res, `${url.pathname}${url.search}`);
    return;
  }
  if (url.pathname === '/sensitive') {
    if (result.kind === 'anonymous') {
      await identity.sendLoginRedirect(req, res, `${url.pathname}${url.search}`);
      return;
    }
    const acr = 'urn:wardgate:acr:mfa';
    if (!result.elevatedAcr.includes(acr)) {
      await identity.sendStepUp(req, res, { acr_values: url.searchParams.get('acr') ?? acr, max_age: Number(url.searchParams.get('max_age') ?? '0'), ttl: 300 }, `${url.pathname}${url.search}`);
      return;
    }
  }

  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(result));
};

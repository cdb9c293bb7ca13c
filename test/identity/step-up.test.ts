import t from 'tap';

import { Browser, countKeys, startStack, testApp, type BrowserResponse } from './helpers.ts';

const MFA = 'urn:wardgate:acr:mfa';
const stack = await startStack(testApp);
t.teardown(() => stack.close());

async function signedInBrowser(username: string): Promise<Browser> {
  const browser = new Browser(stack.certs.ca);
  const loginPage = await browser.follow(await browser.request(`${stack.rpOrigin}/protected`));
  const account = stack.idp.accounts.find((a) => a.username === username)!;
  await browser.follow(await browser.submitForm(loginPage, { username, password: account.password }));
  return browser;
}

/** Follows redirects until the next hop is the Wardgate callback, and returns the response that points there. */
async function untilCallback(browser: Browser, response: BrowserResponse): Promise<BrowserResponse> {
  let current = response;
  while (!String(current.headers.location ?? '').includes('/.wardgate/callback')) {
    if (current.status < 300 || current.status >= 400) {
      throw new Error(`Expected a redirect, received ${current.status} from ${current.url}: ${current.body.slice(0, 200)}`);
    }
    current = await browser.request(new URL(String(current.headers.location), current.url).href);
  }
  return current;
}

t.test('step-up success sets elevation and rotates id', async (t) => {
  const browser = await signedInBrowser('physician');
  const firstId = browser.cookie(stack.rpOrigin, '__Host-wardgate_session');
  const account = stack.idp.accounts.find((a) => a.username === 'physician')!;

  const challenge = await browser.request(`${stack.rpOrigin}/sensitive?max_age=0`);
  t.equal(challenge.status, 302);
  const authorize = new URL(String(challenge.headers.location));
  t.equal(authorize.searchParams.get('acr_values'), MFA);
  t.equal(authorize.searchParams.get('max_age'), '0');

  const form = await browser.follow(challenge);
  t.match(form.body, /name="code"/, 'the IdP asks for the second factor');
  const final = await browser.follow(await browser.submitForm(form, { username: 'physician', password: account.password, code: stack.idp.totp(account.totp_secret, Date.now()) }));

  t.equal(final.status, 200);
  t.equal(final.url, `${stack.rpOrigin}/sensitive?max_age=0`);
  const result = JSON.parse(final.body);
  t.same(result.elevatedAcr, [MFA]);
  t.equal(result.principal.acr, MFA);
  t.same(result.principal.amr, ['pwd', 'otp', 'mfa']);
  const secondId = browser.cookie(stack.rpOrigin, '__Host-wardgate_session');
  t.not(secondId, firstId, 'session id rotated');
  t.equal(await countKeys(stack.keyPrefix, `session:${firstId}`), 0, 'old session id deleted');
  t.equal(result.principal.sessionId, secondId);
});

t.test('step-up with wrong TOTP code stays at the IdP', async (t) => {
  const browser = await signedInBrowser('nurse');
  const form = await browser.follow(await browser.request(`${stack.rpOrigin}/sensitive?max_age=0`));
  const retry = await browser.submitForm(form, { username: 'nurse', password: 'demo-nurse', code: '000000' === stack.idp.totp(stack.idp.accounts[1].totp_secret, Date.now()) ? '111111' : '000000' });
  t.equal(retry.status, 401);
  t.match(retry.body, /Wrong or expired authenticator code/);
});

t.test('step-up with wrong acr fails', async (t) => {
  const browser = await signedInBrowser('nurse');
  // The demo IdP supports only pwd and mfa, so a request for another acr returns acr mfa.
  const account = stack.idp.accounts.find((a) => a.username === 'nurse')!;
  const form = await browser.follow(await browser.request(`${stack.rpOrigin}/sensitive?max_age=0&acr=urn:wardgate:acr:hardware-key`));
  t.match(form.body, /name="code"/, 'max_age=0 makes the IdP ask for the second factor');
  const code = stack.idp.totp(account.totp_secret, Date.now());
  const callback = await untilCallback(browser, await browser.submitForm(form, { username: 'nurse', password: account.password, code }));
  const before = browser.cookie(stack.rpOrigin, '__Host-wardgate_session');

  const response = await browser.request(String(callback.headers.location));
  t.equal(response.status, 403);
  t.equal(response.headers['x-wardgate-error'], 'WG_AUTH_STEP_UP_FAILED');
  t.match(response.body, /acr &#34;urn:wardgate:acr:mfa&#34;/);
  t.equal(browser.cookie(stack.rpOrigin, '__Host-wardgate_session'), before, 'session unchanged');
});

t.test('step-up with stale auth_time fails', async (t) => {
  const browser = await signedInBrowser('clerk');
  const account = stack.idp.accounts.find((a) => a.username === 'clerk')!;
  // After a first step-up the IdP session has acr mfa. A second request for acr mfa without
  // max_age is then answered without a prompt, so its auth_time is that of the first step-up.
  const first = await browser.follow(await browser.request(`${stack.rpOrigin}/sensitive?max_age=0`));
  await browser.follow(await browser.submitForm(first, { username: 'clerk', password: account.password, code: stack.idp.totp(account.totp_secret, Date.now()) }));

  const start = await browser.request(`${stack.rpOrigin}/.wardgate/login?return_to=%2Fhome`);
  // Turn the stored attempt into a max_age=0 step-up that started 10 minutes from now, so the reused auth_time is stale.
  const state = new URL(String(start.headers.location)).searchParams.get('state')!;
  await stack.store.set(`login:${state}`, JSON.stringify({
    ...JSON.parse((await stack.store.get(`login:${state}`))!),
    step_up: { acr_values: 'urn:wardgate:acr:mfa', max_age: 0, ttl: 300 },
    started_at_s: Math.floor(Date.now() / 1000) + 600,
  }), 60_000);
  const authorize = new URL(String(start.headers.location));
  authorize.searchParams.set('acr_values', MFA);
  const callback = await untilCallback(browser, await browser.request(authorize.href));

  const response = await browser.request(String(callback.headers.location));
  t.equal(response.status, 403);
  t.equal(response.headers['x-wardgate-error'], 'WG_AUTH_STEP_UP_FAILED');
  t.match(response.body, /auth_time \d+, expected between/);
});

t.test('api client gets RFC 9470 challenge', async (t) => {
  const browser = new Browser(stack.certs.ca);
  const signedIn = await signedInBrowser('nurse');
  browser.setCookie(stack.rpOrigin, '__Host-wardgate_session', signedIn.cookie(stack.rpOrigin, '__Host-wardgate_session')!);
  browser.accept = 'application/json';

  const response = await browser.request(`${stack.rpOrigin}/sensitive?max_age=300`);
  t.equal(response.status, 401);
  t.equal(response.headers['www-authenticate'], `Bearer realm="wardgate", error="insufficient_user_authentication", error_description="A stronger or more recent authentication is required", acr_values="${MFA}", max_age=300`);
  t.equal(JSON.parse(response.body).error, 'WG_AUTH_STEP_UP_REQUIRED');
});

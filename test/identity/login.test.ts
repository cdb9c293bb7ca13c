import t from 'tap';

import { Browser, countKeys, startStack, testApp } from './helpers.ts';

const stack = await startStack(testApp);
t.teardown(() => stack.close());

async function signIn(browser: Browser, path: string, username: string): Promise<Awaited<ReturnType<Browser['follow']>>> {
  const loginPage = await browser.follow(await browser.request(`${stack.rpOrigin}${path}`));
  const account = stack.idp.accounts.find((a) => a.username === username)!;
  return browser.follow(await browser.submitForm(loginPage, { username, password: account.password }));
}

t.test('full login sets the session and returns the principal', async (t) => {
  const browser = new Browser(stack.certs.ca);
  const start = await browser.request(`${stack.rpOrigin}/protected?x=1`);
  t.equal(start.status, 302);
  const location = new URL(String(start.headers.location));
  t.equal(location.origin, new URL(stack.idp.issuer).origin);
  t.equal(location.searchParams.get('code_challenge_method'), 'S256');
  t.equal(location.searchParams.get('redirect_uri'), `${stack.rpOrigin}/.wardgate/callback`);
  t.match(String(start.headers['set-cookie']), /^__Host-wardgate_login_[A-Za-z0-9_-]{12}=[A-Za-z0-9_-]{43}; Max-Age=600; Path=\/; Secure; HttpOnly; SameSite=Lax/);

  const loginPage = await browser.follow(start);
  t.equal(loginPage.status, 200);
  t.notMatch(loginPage.body, /name="code"/, 'no second factor on a plain sign-in');
  const final = await browser.follow(await browser.submitForm(loginPage, { username: 'physician', password: 'demo-physician' }));

  t.equal(final.status, 200);
  t.equal(final.url, `${stack.rpOrigin}/protected?x=1`);
  const sessionId = browser.cookie(stack.rpOrigin, '__Host-wardgate_session');
  t.match(sessionId, /^[A-Za-z0-9_-]{43}$/);
  const result = JSON.parse(final.body);
  t.equal(result.kind, 'authenticated');
  t.same(result.principal.groups, ['physicians', 'clinicians']);
  t.equal(result.principal.subject, 'demo-physician');
  t.equal(result.principal.email, 'physician@demo.wardgate.invalid');
  t.equal(result.principal.acr, 'urn:wardgate:acr:pwd');
  t.same(result.principal.amr, ['pwd']);
  t.equal(result.principal.method, 'session');
  t.equal(typeof result.principal.auth_time, 'number');
  t.same(result.elevatedAcr, []);
});

t.test('session cookie attributes', async (t) => {
  const browser = new Browser(stack.certs.ca);
  const loginPage = await browser.follow(await browser.request(`${stack.rpOrigin}/protected`));
  let response = await browser.submitForm(loginPage, { username: 'nurse', password: 'demo-nurse' });
  while (!String(response.headers.location ?? '').startsWith('/protected')) {
    response = await browser.request(new URL(String(response.headers.location), response.url).href);
  }
  const cookies = response.headers['set-cookie'] ?? [];
  t.match(cookies.find((line) => line.startsWith('__Host-wardgate_session=')), /^__Host-wardgate_session=[A-Za-z0-9_-]{43}; Max-Age=3600; Path=\/; Secure; HttpOnly; SameSite=Lax$/);
  t.match(cookies.find((line) => line.startsWith('__Host-wardgate_login_')), /^__Host-wardgate_login_[A-Za-z0-9_-]{12}=; Max-Age=0;/, 'the used binding cookie is cleared');
});

t.test('callback with unknown state gets 403 page', async (t) => {
  const browser = new Browser(stack.certs.ca);
  const response = await browser.request(`${stack.rpOrigin}/.wardgate/callback?state=${'A'.repeat(43)}&code=x`);
  t.equal(response.status, 403);
  t.equal(response.headers['x-wardgate-error'], 'WG_AUTH_STATE_UNKNOWN');
  t.match(response.body, /href="\/\.wardgate\/login\?return_to=%2F"/);

  const missing = await browser.request(`${stack.rpOrigin}/.wardgate/callback?code=x`);
  t.equal(missing.status, 403);
  t.equal(missing.headers['x-wardgate-error'], 'WG_AUTH_STATE_UNKNOWN');
});

t.test('callback from another browser gets 403', async (t) => {
  const victim = new Browser(stack.certs.ca);
  const attacker = new Browser(stack.certs.ca);
  const loginPage = await attacker.follow(await attacker.request(`${stack.rpOrigin}/protected`));
  let response = await attacker.submitForm(loginPage, { username: 'clerk', password: 'demo-clerk' });
  while (!String(response.headers.location ?? '').includes('/.wardgate/callback')) {
    response = await attacker.request(new URL(String(response.headers.location), response.url).href);
  }

  const callback = await victim.request(String(response.headers.location));
  t.equal(callback.status, 403);
  t.equal(callback.headers['x-wardgate-error'], 'WG_AUTH_BROWSER_MISMATCH');
  t.equal(victim.cookie(stack.rpOrigin, '__Host-wardgate_session'), undefined);

  // The rejected callback does not use up the attempt: the browser that started it still finishes.
  const own = await attacker.request(String(response.headers.location));
  t.equal(own.status, 302, 'the browser that started the sign-in completes it');
  t.ok(attacker.cookie(stack.rpOrigin, '__Host-wardgate_session'), 'and gets its session');

  const replay = await attacker.request(String(response.headers.location));
  t.equal(replay.status, 403, 'the state is used once');
  t.equal(replay.headers['x-wardgate-error'], 'WG_AUTH_STATE_UNKNOWN');
});

t.test('callback with duplicated state gets 400', async (t) => {
  const browser = new Browser(stack.certs.ca);
  const response = await browser.request(`${stack.rpOrigin}/.wardgate/callback?state=a&state=b&code=x`);
  t.equal(response.status, 400);
  t.equal(response.headers['x-wardgate-error'], 'WG_AUTH_INVALID_CALLBACK');
});

t.test('callback with IdP error gets 403', async (t) => {
  const browser = new Browser(stack.certs.ca);
  const start = await browser.request(`${stack.rpOrigin}/protected`);
  const state = new URL(String(start.headers.location)).searchParams.get('state');
  const response = await browser.request(`${stack.rpOrigin}/.wardgate/callback?state=${state}&error=access_denied&error_description=%3Cb%3Eno%3C%2Fb%3E`);
  t.equal(response.status, 403);
  t.equal(response.headers['x-wardgate-error'], 'WG_AUTH_IDP_ERROR');
  t.notMatch(response.body, /<b>/, 'IdP text is escaped');
});

for (const [name, tamper, code] of [
  ['wrong nonce', (url: URL) => url.searchParams.set('nonce', 'attacker-chosen-nonce'), 'WG_AUTH_NONCE_MISMATCH'],
  ['missing nonce', (url: URL) => url.searchParams.delete('nonce'), 'WG_AUTH_NONCE_MISMATCH'],
  ['PKCE verifier mismatch', (url: URL) => url.searchParams.set('code_challenge', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'), 'WG_AUTH_TOKEN_EXCHANGE_FAILED'],
] as const) {
  t.test(`${name} is rejected`, async (t) => {
    const browser = new Browser(stack.certs.ca);
    const start = await browser.request(`${stack.rpOrigin}/protected`);
    const authorize = new URL(String(start.headers.location));
    tamper(authorize);
    const loginPage = await browser.follow(await browser.request(authorize.href));
    const final = await browser.follow(await browser.submitForm(loginPage, { username: 'nurse', password: 'demo-nurse' }));

    t.equal(final.headers['x-wardgate-error'], code);
    t.equal(final.status, code === 'WG_AUTH_TOKEN_EXCHANGE_FAILED' ? 502 : 403);
    t.equal(browser.cookie(stack.rpOrigin, '__Host-wardgate_session'), undefined);
  });
}

t.test('wrong password shows the form again', async (t) => {
  const browser = new Browser(stack.certs.ca);
  const loginPage = await browser.follow(await browser.request(`${stack.rpOrigin}/protected`));
  const retry = await browser.submitForm(loginPage, { username: 'nurse', password: 'wrong' });
  t.equal(retry.status, 401);
  t.match(retry.body, /Wrong username or password/);
});

t.test('logout deletes the session', async (t) => {
  const browser = new Browser(stack.certs.ca);
  await signIn(browser, '/protected', 'nurse');
  const sessionId = browser.cookie(stack.rpOrigin, '__Host-wardgate_session');
  t.equal(await countKeys(stack.keyPrefix, `session:${sessionId}`), 1);

  const crossSite = await browser.request(`${stack.rpOrigin}/.wardgate/logout`, { method: 'POST', headers: { origin: 'https://evil.example' } });
  t.equal(crossSite.status, 403);
  t.equal(crossSite.headers['x-wardgate-error'], 'WG_AUTH_CSRF_REJECTED');
  const noOrigin = await browser.request(`${stack.rpOrigin}/.wardgate/logout`, { method: 'POST' });
  t.equal(noOrigin.status, 403);
  t.equal(await countKeys(stack.keyPrefix, `session:${sessionId}`), 1);

  const withoutToken = await browser.request(`${stack.rpOrigin}/.wardgate/logout`, { method: 'POST', headers: { origin: stack.rpOrigin } });
  t.equal(withoutToken.status, 403, 'a same-origin post without the CSRF token is rejected');
  t.equal(withoutToken.headers['x-wardgate-error'], 'WG_AUTH_CSRF_REJECTED');
  t.match(withoutToken.body, /<title>Sign-out failed<\/title>/, 'the page names the sign-out');
  const wrongToken = await browser.request(`${stack.rpOrigin}/.wardgate/logout`, { method: 'POST', headers: { origin: stack.rpOrigin }, form: { csrf_token: 'A'.repeat(43) } });
  t.equal(wrongToken.status, 403, 'a wrong CSRF token is rejected');
  t.equal(await countKeys(stack.keyPrefix, `session:${sessionId}`), 1);

  const form = await browser.request(`${stack.rpOrigin}/.wardgate/logout`);
  const csrfToken = /name="csrf_token" value="([^"]+)"/.exec(form.body)?.[1];
  t.match(csrfToken, /^[A-Za-z0-9_-]{43}$/, 'the sign-out form carries the CSRF token');
  const logout = await browser.request(`${stack.rpOrigin}/.wardgate/logout`, { method: 'POST', headers: { origin: stack.rpOrigin }, form: { csrf_token: csrfToken! } });
  t.equal(logout.status, 303);
  const endSession = new URL(String(logout.headers.location));
  t.equal(endSession.origin, new URL(stack.idp.issuer).origin, 'the browser goes on to the IdP end_session_endpoint');
  t.ok(endSession.searchParams.get('id_token_hint'), 'id_token_hint is sent');
  t.equal(endSession.searchParams.get('post_logout_redirect_uri'), `${stack.rpOrigin}/.wardgate/logged-out`);
  t.match(String(logout.headers['set-cookie']), /^__Host-wardgate_session=; Max-Age=0; Path=\/; Secure; HttpOnly; SameSite=Lax$/);
  t.equal(await countKeys(stack.keyPrefix, `session:${sessionId}`), 0);

  browser.setCookie(stack.rpOrigin, '__Host-wardgate_session', sessionId!);
  const whoami = await browser.request(`${stack.rpOrigin}/whoami`);
  t.same(JSON.parse(whoami.body), { kind: 'anonymous' });
});

t.test('api client gets 401 bearer challenge', async (t) => {
  const browser = new Browser(stack.certs.ca);
  browser.accept = 'application/json';
  const response = await browser.request(`${stack.rpOrigin}/protected`);
  t.equal(response.status, 401);
  t.equal(response.headers['www-authenticate'], 'Bearer realm="wardgate"');
  t.equal(JSON.parse(response.body).error, 'WG_AUTH_TOKEN_MISSING');
});

import t from 'tap';

import { Browser, startStack, testApp, type BrowserResponse } from './helpers.ts';

const stack = await startStack(testApp);
t.teardown(() => stack.close());

/** Follows a redirect chain and submits the IdP's password form when one appears. */
async function finishAtIdp(browser: Browser, response: BrowserResponse, username: string): Promise<BrowserResponse> {
  const page = await browser.follow(response);
  if (!page.body.includes('name="password"')) return page;
  return browser.follow(await browser.submitForm(page, { username, password: `demo-${username}` }));
}

t.test('tabs signing in at once each complete', async (t) => {
  const browser = new Browser(stack.certs.ca);
  const starts = await Promise.all([1, 2, 3].map((tab) => browser.request(`${stack.rpOrigin}/protected?tab=${tab}`)));
  const states = starts.map((start) => new URL(String(start.headers.location)).searchParams.get('state'));
  t.equal(new Set(states).size, 3, 'each attempt has its own state');

  const callbacks: string[] = [];
  for (const [i, start] of starts.entries()) {
    let current = start;
    while (!String(current.headers.location ?? '').includes('/.wardgate/callback')) {
      if (current.status === 200 && current.body.includes('name="password"')) {
        current = await browser.submitForm(current, { username: 'nurse', password: 'demo-nurse' });
        continue;
      }
      if (current.status < 300 || current.status >= 400) throw new Error(`tab ${i + 1}: expected a redirect, received ${current.status} from ${current.url}`);
      current = await browser.request(new URL(String(current.headers.location), current.url).href);
    }
    callbacks.push(String(current.headers.location));
    const done = await browser.follow(current);
    t.equal(done.status, 200, `tab ${i + 1} completes`);
    t.equal(done.url, `${stack.rpOrigin}/protected?tab=${i + 1}`, `tab ${i + 1} returns to its own page`);
  }

  for (const callback of callbacks) {
    const replay = await browser.request(callback);
    t.equal(replay.status, 403, 'each state is usable once');
    t.equal(replay.headers['x-wardgate-error'], 'WG_AUTH_STATE_UNKNOWN');
  }
});

t.test('pending sign-ins are capped', async (t) => {
  const browser = new Browser(stack.certs.ca);
  for (let attempt = 0; attempt < 16; attempt++) {
    await browser.request(`${stack.rpOrigin}/protected?attempt=${attempt}`);
  }
  const seventeenth = await browser.request(`${stack.rpOrigin}/protected?attempt=16`);
  const lines = seventeenth.headers['set-cookie'] ?? [];
  t.equal(lines.filter((line) => /^__Host-wardgate_login_[A-Za-z0-9_-]{12}=; Max-Age=0;/.test(line)).length, 16, 'the 16 older binding cookies are cleared');
  t.equal(lines.filter((line) => /^__Host-wardgate_login_[A-Za-z0-9_-]{12}=[A-Za-z0-9_-]{43}; Max-Age=600;/.test(line)).length, 1, 'the new attempt gets its cookie');
});

t.test('unmatched state gets a restart page', async (t) => {
  const browser = new Browser(stack.certs.ca);
  for (const state of ['A'.repeat(43), 'short', '%00', 'x'.repeat(5000)]) {
    const response = await browser.request(`${stack.rpOrigin}/.wardgate/callback?state=${encodeURIComponent(state)}&code=abc`);
    t.ok(response.status === 403 || response.status === 400, `state ${JSON.stringify(state.slice(0, 10))}: 4xx, never 500 (${response.status})`);
    t.equal(response.headers.location, undefined, 'no redirect, so no loop');
    t.match(response.body, /Start the sign-in again/, 'the page offers to start again');
  }
});

t.test('sign-in replaces a planted session id', async (t) => {
  const browser = new Browser(stack.certs.ca);
  const planted = 'P'.repeat(43);
  browser.setCookie(stack.rpOrigin, '__Host-wardgate_session', planted);

  await finishAtIdp(browser, await browser.request(`${stack.rpOrigin}/protected`), 'nurse');
  const first = browser.cookie(stack.rpOrigin, '__Host-wardgate_session');
  t.match(first, /^[A-Za-z0-9_-]{43}$/);
  t.not(first, planted, 'the session id is chosen by Wardgate at sign-in');

  await finishAtIdp(browser, await browser.request(`${stack.rpOrigin}/.wardgate/login?return_to=%2Fwhoami`), 'nurse');
  const second = browser.cookie(stack.rpOrigin, '__Host-wardgate_session');
  t.not(second, first, 'a new sign-in gets a new id');
  browser.setCookie(stack.rpOrigin, '__Host-wardgate_session', first!);
  const old = await browser.request(`${stack.rpOrigin}/whoami`);
  t.same(JSON.parse(old.body), { kind: 'anonymous' }, 'the previous id no longer works');
});

t.test('email with two @ is rejected', async (t) => {
  stack.idp.updateAccount('clerk', { email: 'clerk@evil.example@demo.wardgate.invalid' });
  t.teardown(() => stack.idp.updateAccount('clerk', { email: 'clerk@demo.wardgate.invalid' }));
  const browser = new Browser(stack.certs.ca);

  const final = await finishAtIdp(browser, await browser.request(`${stack.rpOrigin}/protected`), 'clerk');

  t.equal(final.status, 403);
  t.equal(final.headers['x-wardgate-error'], 'WG_AUTH_ID_TOKEN_INVALID');
  t.match(final.body, /claim &#34;email&#34; is &#34;clerk@evil.example@demo.wardgate.invalid&#34;, expected one address with exactly one &#34;@&#34;/);
  t.equal(browser.cookie(stack.rpOrigin, '__Host-wardgate_session'), undefined, 'no session is created');
});

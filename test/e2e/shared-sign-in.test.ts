import t from 'tap';

import { Browser, startTestStack, type TestStack } from './support.ts';
import type { BrowserResponse } from '../identity/helpers.ts';

let stack: TestStack;
let primary: string;
let secondary: string;

t.before(async () => {
  stack = await startTestStack({
    session: { idle_timeout: 1800, absolute_lifetime: 12 * 3600, shared_sign_in: { sign_in_host: 'localhost', hosts: ['localhost', '127.0.0.1'] } },
  });
  primary = stack.url;
  secondary = stack.url.replace('localhost', '127.0.0.1');
});
t.teardown(() => stack.close());

/** Follows redirects like {@link Browser.follow}, but returns every URL visited. */
async function followAll(browser: Browser, response: BrowserResponse): Promise<{ final: BrowserResponse; visited: string[] }> {
  const visited = [response.url];
  let current = response;
  for (let hops = 0; hops < 12 && current.status >= 300 && current.status < 400; hops += 1) {
    current = await browser.request(new URL(String(current.headers.location), current.url).href);
    visited.push(current.url);
  }
  return { final: current, visited };
}

async function signInAt(browser: Browser, origin: string, username: string): Promise<BrowserResponse> {
  const loginPage = await browser.follow(await browser.request(`${origin}/patients/p-0001`));
  return browser.follow(await browser.submitForm(loginPage, { username, password: `demo-${username}` }));
}

t.test('second host reuses the sign-in without a prompt', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  const page = await signInAt(browser, primary, 'nurse');
  t.equal(page.status, 200);
  const primarySession = browser.cookie(primary, '__Host-wardgate_session');

  const { final, visited } = await followAll(browser, await browser.request(`${secondary}/patients/p-0002?tab=notes`));

  t.equal(final.status, 200, 'the page on the second host loads');
  t.equal(final.url, `${secondary}/patients/p-0002?tab=notes`, 'the browser ends where it was going');
  t.notOk(visited.some((url) => url.startsWith(new URL(stack.idp.issuer).origin)), 'the IdP was not visited again');
  t.ok(visited.some((url) => url.startsWith(`${primary}/.wardgate/handoff?`)), 'the session was handed over by the sign-in host');
  const secondarySession = browser.cookie(secondary, '__Host-wardgate_session');
  t.match(secondarySession, /^[A-Za-z0-9_-]{43}$/, 'the second host has its own session cookie');
  t.not(secondarySession, primarySession, 'with its own session id');
});

t.test('first visit on the second host signs in once', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  const loginPage = await browser.follow(await browser.request(`${secondary}/patients/p-0003`));
  t.match(loginPage.body, /name="password"/, 'the IdP asks for the password');

  const { final } = await followAll(browser, await browser.submitForm(loginPage, { username: 'nurse', password: 'demo-nurse' }));

  t.equal(final.status, 200);
  t.equal(final.url, `${secondary}/patients/p-0003`);
  t.ok(browser.cookie(primary, '__Host-wardgate_session'), 'the sign-in host holds a session');
  t.ok(browser.cookie(secondary, '__Host-wardgate_session'), 'the second host holds a session');
});

t.test('hand-off code is single use and browser bound', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signInAt(browser, primary, 'nurse');
  let current = await browser.request(`${secondary}/`);
  while (!String(current.headers.location ?? '').includes('/.wardgate/handoff/complete')) {
    current = await browser.request(new URL(String(current.headers.location), current.url).href);
  }
  const completeUrl = String(current.headers.location);

  const thief = new Browser(stack.certificates.ca.cert);
  const stolen = await thief.request(completeUrl);
  t.equal(stolen.status, 403, 'another browser cannot redeem the code');
  t.equal(stolen.headers['x-wardgate-error'], 'WG_AUTH_HANDOFF_INVALID');
  t.equal(thief.cookie(secondary, '__Host-wardgate_session'), undefined);

  const replay = await browser.request(completeUrl);
  t.equal(replay.status, 403, 'a code is gone once anyone tried it');
});

t.test('hand-off only targets configured hosts', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signInAt(browser, primary, 'nurse');
  const binding = 'A'.repeat(43);

  for (const target of ['evil.example', 'localhost', '127.0.0.1.evil.example', '']) {
    const response = await browser.request(`${primary}/.wardgate/handoff?target=${encodeURIComponent(target)}&return_to=%2F&binding=${binding}`);
    t.equal(response.status, 403, `target ${JSON.stringify(target)} is rejected`);
    t.equal(response.headers['x-wardgate-error'], 'WG_AUTH_HANDOFF_INVALID');
  }
  const badReturn = await browser.request(`${primary}/.wardgate/handoff?target=127.0.0.1&return_to=%2F%2Fevil.example&binding=${binding}`);
  t.equal(badReturn.status, 400, 'an off-site return_to is rejected');
  const wrongHost = await browser.request(`${secondary}/.wardgate/handoff?target=127.0.0.1&return_to=%2F&binding=${binding}`);
  t.equal(wrongHost.status, 403, 'only the sign-in host issues codes');
});

import { Redis } from 'ioredis';
import { decodeJwt } from 'jose';
import t from 'tap';

import { createHttpsFetch } from '../../proxy/identity/https-fetch.ts';
import { Browser, REDIS_URL, signIn, startTestStack, type TestStack } from './support.ts';

let stack: TestStack;

t.before(async () => {
  stack = await startTestStack({ session: { idle_timeout: 1800, absolute_lifetime: 12 * 3600, claims_refresh_interval: 300 } });
});
t.teardown(() => stack.close());

async function assertedGroups(browser: Browser): Promise<{ status: number; groups?: unknown }> {
  const response = await browser.request(`${stack.url}/debug/headers`, { headers: { accept: 'application/json' } });
  if (response.status !== 200) return { status: response.status };
  const headers = (JSON.parse(response.body) as { headers: Record<string, string> }).headers;
  return { status: 200, groups: decodeJwt(headers['x-wardgate-assertion']!).groups };
}

t.test('group removal takes effect after the refresh interval', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  t.teardown(() => stack.idp.updateAccount('nurse', { groups: ['nurses', 'clinicians'] }));
  t.same(await assertedGroups(browser), { status: 200, groups: ['nurses', 'clinicians'] });

  stack.idp.updateAccount('nurse', { groups: ['nurses'] });
  stack.clock.now += 60_000;
  t.same(await assertedGroups(browser), { status: 200, groups: ['nurses', 'clinicians'] }, 'claims are kept within the interval');

  stack.clock.now += 241_000;
  const after = await browser.request(`${stack.url}/patients/p-0001`, { headers: { accept: 'text/html' } });
  t.equal(after.status, 403, 'without the clinicians group the policy blocks the nurse');

  stack.idp.updateAccount('nurse', { groups: ['nurses', 'clinicians'] });
  stack.clock.now += 301_000;
  t.same(await assertedGroups(browser), { status: 200, groups: ['nurses', 'clinicians'] }, 'a group added back returns after the next refresh');
});

t.test('revoked access token ends the session', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'physician');
  const session = browser.cookie(stack.url, '__Host-wardgate_session')!;
  const redis = new Redis(REDIS_URL);
  const record = JSON.parse((await redis.get(`${stack.keyPrefix}kv:session:${session}`)) ?? '{}') as { access_token?: string };
  redis.disconnect();
  t.ok(record.access_token, 'the session keeps the access token for userinfo');

  const credentials = Buffer.from(`${stack.config.oidc.client_id}:${stack.config.oidc.client_secret}`).toString('base64');
  const revocation = await createHttpsFetch(stack.certificates.ca.cert)(`${stack.idp.issuer}/token/revocation`, {
    method: 'POST',
    headers: { authorization: `Basic ${credentials}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: record.access_token!, token_type_hint: 'access_token' }).toString(),
  });
  t.equal(revocation.status, 200, 'the IdP revoked the token');

  t.equal((await assertedGroups(browser)).status, 200, 'within the interval the session still works');
  stack.clock.now += 301_000;
  const after = await browser.request(`${stack.url}/patients/p-0001`);
  t.equal(after.status, 302, 'after the interval the browser is sent to sign in');
  t.equal(new URL(String(after.headers.location)).origin, new URL(stack.idp.issuer).origin);
  t.notMatch(new URL(String(after.headers.location)).search, /acr_values/, 'as a new sign-in, not a step-up');
});

t.test('unreachable IdP fails the refresh closed', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  await stack.idp.close();

  stack.clock.now += 301_000;
  const response = await browser.request(`${stack.url}/patients/p-0001`);
  t.equal(response.status, 503, 'stale claims are not trusted while the IdP is down');
});

import { decodeJwt } from 'jose';
import t from 'tap';

import { Browser, signIn, startTestStack, type TestStack } from './support.ts';

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

import { fileURLToPath } from 'node:url';
import t from 'tap';

import { Browser, signIn, startTestStack } from './support.ts';

// The route's `fail_mode.idp` decides what a session due for a claims refresh gets while the
// IdP is down: `closed` returns 503, `open` keeps the claims the session already has.
const policyFile = fileURLToPath(new URL('../../policy/examples/notes-step-up.yaml', import.meta.url));
const stack = await startTestStack({
  policyFile,
  session: { idle_timeout: 1800, absolute_lifetime: 12 * 3600, claims_refresh_interval: 300 },
  routes: (upstream) => [
    { id: 'ehr', host: '*', path_prefix: '/', upstream, sensitivity: 'normal', fail_mode: { redis: 'closed', scorer: 'closed', idp: 'closed' } },
    { id: 'ward-board', host: '*', path_prefix: '/patients', upstream, sensitivity: 'low', fail_mode: { redis: 'closed', scorer: 'closed', idp: 'open' } },
  ],
});
t.teardown(() => stack.close());

t.test('IdP outage during a claims refresh', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  t.equal((await browser.request(`${stack.url}/patients/p-0001`)).status, 200, 'before the outage');

  await stack.idp.close();
  stack.clock.now += 301_000;

  const open = await browser.request(`${stack.url}/patients/p-0001`);
  t.equal(open.status, 200, 'a route with fail_mode.idp open keeps the current claims');
  const closed = await browser.request(`${stack.url}/fhir/Patient/p-0001`, { headers: { accept: 'application/json' } });
  t.equal(closed.status, 503, 'a route with fail_mode.idp closed does not trust claims it cannot refresh');
  t.match(JSON.parse(closed.body), { error: 'WG_AUTH_IDP_UNAVAILABLE' });
  t.equal(closed.headers['retry-after'], '30');
});

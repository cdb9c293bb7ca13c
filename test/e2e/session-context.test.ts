import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { Browser, signIn, startTestStack } from './support.ts';

// The policy receives a browser session's age: `session.active` and `session.age_s` in CEL.
const folder = mkdtempSync(join(tmpdir(), 'wgtest-session-context-'));
const policyFile = join(folder, 'policy.yaml');
writeFileSync(policyFile, `version: 1
rules:
  - id: old-sessions-blocked
    when: "session.active && session.age_s >= 3600"
    action: block
  - id: sessions-allowed
    when: "session.active"
    action: allow
`);
const stack = await startTestStack({ policyFile });
t.teardown(async () => {
  await stack.close();
  rmSync(folder, { recursive: true, force: true });
});

t.test('session age reaches the policy', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  const page = await signIn(stack, browser, 'nurse');
  t.equal(page.status, 200, 'a new session is active and young');

  stack.clock.now += 1_200_000;
  t.equal((await browser.request(`${stack.url}/patients/p-0001`)).status, 200, 'twenty minutes in');

  stack.clock.now += 1_200_000;
  t.equal((await browser.request(`${stack.url}/patients/p-0001`)).status, 200, 'forty minutes in');

  // Each gap stays under the 30-minute idle timeout, so only the age changes the decision.
  stack.clock.now += 1_300_000;
  const old = await browser.request(`${stack.url}/patients/p-0001`, { headers: { accept: 'application/json' } });
  t.equal(old.status, 403, 'past an hour the age rule decides');
  t.match(JSON.parse(old.body), { error: 'WG_ACCESS_BLOCKED' });
});

import t from 'tap';

import { MemoryKeyValueStore } from '../../proxy/state/memory-key-value-store.ts';
import { Browser, startStack, testApp } from './helpers.ts';

// The memory store shares the fake clock, so idle expiry can be tested without waiting.
const clock = { now: Date.now() };
const store = new MemoryKeyValueStore({ now: () => clock.now });
const stack = await startStack(testApp, { store, now: () => clock.now, session: { idle_timeout_s: 600, absolute_lifetime_s: 3600 } });
t.teardown(async () => {
  await stack.close();
  await store.close();
});

async function signIn(): Promise<Browser> {
  const browser = new Browser(stack.certs.ca);
  const loginPage = await browser.follow(await browser.request(`${stack.rpOrigin}/protected`));
  await browser.follow(await browser.submitForm(loginPage, { username: 'nurse', password: 'demo-nurse' }));
  return browser;
}

async function whoami(browser: Browser): Promise<string> {
  return (JSON.parse((await browser.request(`${stack.rpOrigin}/whoami`)).body) as { kind: string }).kind;
}

t.test('idle timeout ends an unused session', async (t) => {
  const browser = await signIn();
  clock.now += 599_000;
  t.equal(await whoami(browser), 'authenticated', 'use within the idle timeout keeps the session');
  clock.now += 599_000;
  t.equal(await whoami(browser), 'authenticated', 'each use restarts the idle timeout');
  clock.now += 601_000;
  t.equal(await whoami(browser), 'anonymous', 'more than idle_timeout_s without use ends it');
});

t.test('absolute lifetime ends an active session', async (t) => {
  const browser = await signIn();
  for (let minutes = 0; minutes < 55; minutes += 5) {
    clock.now += 300_000;
    t.equal(await whoami(browser), 'authenticated', `active after ${minutes + 5} minutes`);
  }
  clock.now += 300_000;
  t.equal(await whoami(browser), 'anonymous', 'the session ends after absolute_lifetime_s however active');
});

import { PassThrough } from 'node:stream';

import t from 'tap';

import { Browser, startStack, testApp } from './helpers.ts';

const stack = await startStack(testApp);
t.teardown(() => stack.close());

async function signIn(username: string): Promise<Browser> {
  const browser = new Browser(stack.certs.ca);
  const loginPage = await browser.follow(await browser.request(`${stack.rpOrigin}/protected`));
  await browser.follow(await browser.submitForm(loginPage, { username, password: `demo-${username}` }));
  return browser;
}

async function whoami(browser: Browser): Promise<string> {
  return (JSON.parse((await browser.request(`${stack.rpOrigin}/whoami`)).body) as { kind: string }).kind;
}

t.test('revokeSubject ends every session of one user', async (t) => {
  const first = await signIn('nurse');
  const second = await signIn('nurse');
  const bystander = await signIn('physician');
  const socket = new PassThrough();
  stack.identity.trackSocket(first.cookie(stack.rpOrigin, '__Host-wardgate_session')!, socket);
  t.equal(await whoami(first), 'authenticated');

  t.equal(await stack.identity.revokeSubject('demo-nurse'), 2, 'both nurse sessions are counted');

  t.equal(await whoami(first), 'anonymous');
  t.equal(await whoami(second), 'anonymous');
  t.equal(await whoami(bystander), 'authenticated', 'another user keeps the session');
  t.ok(socket.destroyed, 'the WebSocket of a revoked session is closed');
  t.equal(await stack.identity.revokeSubject('demo-nurse'), 0, 'a second revocation finds nothing');
  t.equal(await stack.identity.revokeSubject('nobody'), 0, 'an unknown subject revokes nothing');
});

t.test('sign-in after revocation works again', async (t) => {
  await signIn('clerk');
  t.equal(await stack.identity.revokeSubject('demo-clerk'), 1);
  const again = await signIn('clerk');
  t.equal(await whoami(again), 'authenticated');
});

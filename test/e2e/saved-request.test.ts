import { fileURLToPath } from 'node:url';

import { Redis } from 'ioredis';
import t from 'tap';

import { startRecordingUpstream, type RecordingUpstream } from './recording-upstream.ts';
import { Browser, REDIS_URL, signIn, startTestStack, waitForSpan, type TestStack } from './support.ts';
import type { BrowserResponse } from '../identity/helpers.ts';

const POLICY_FILE = fileURLToPath(new URL('../../policy/examples/notes-step-up.yaml', import.meta.url));

const NOTE_TEXT = 'BP 120/80 – stable; Ärztin notes: "no change" & <review> 100% tomorrow\r\nsecond line';

let stack: TestStack;
let recorder: RecordingUpstream;

t.before(async () => {
  let appUrl = '';
  recorder = await startRecordingUpstream(() => appUrl);
  stack = await startTestStack({
    policyFile: POLICY_FILE,
    routes: (upstream) => {
      appUrl = upstream;
      return [{ id: 'ehr', host: '*', path_prefix: '/', upstream: recorder.url, sensitivity: 'normal', fail_mode: { redis: 'closed', scorer: 'closed', idp: 'closed' } }];
    },
  });
});
t.teardown(async () => {
  await stack.close();
  await recorder.close();
});

function notePosts(): RecordingUpstream['requests'] {
  return recorder.requests.filter((request) => request.url === '/notes');
}

/** Posts the note form and returns Wardgate's response (the step-up redirect). */
function postNote(browser: Browser, form: Record<string, string>): Promise<BrowserResponse> {
  return browser.request(`${stack.url}/notes`, { form, headers: { origin: stack.url } });
}

/** Follows the step-up to the IdP's TOTP form and submits it, returning the redirect that leaves the IdP. */
async function completeTotp(browser: Browser, challenge: BrowserResponse, username: string): Promise<BrowserResponse> {
  const account = stack.idp.accounts.find((candidate) => candidate.username === username)!;
  const form = await browser.follow(challenge);
  let current = await browser.submitForm(form, { username, password: account.password, code: stack.idp.totp(account.totp_secret, Date.now()) });
  while (!String(current.headers.location ?? '').includes('/.wardgate/replay')) {
    if (current.status < 300 || current.status >= 400) throw new Error(`expected a redirect, received ${current.status} from ${current.url}: ${current.body.slice(0, 300)}`);
    current = await browser.request(new URL(String(current.headers.location), current.url).href);
  }
  return current;
}

async function savedRequestValues(): Promise<string[]> {
  const redis = new Redis(REDIS_URL);
  try {
    const keys = await redis.keys(`${stack.keyPrefix}kv:saved-request:*`);
    return keys.length === 0 ? [] : (await redis.mget(...keys)).filter((value): value is string => value !== null);
  } finally {
    redis.disconnect();
  }
}

t.test('note POST survives a TOTP step-up', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'physician');
  const sent = new URLSearchParams({ patient: 'p-0001', text: NOTE_TEXT }).toString();
  const before = notePosts().length;

  const challenge = await postNote(browser, { patient: 'p-0001', text: NOTE_TEXT });
  t.equal(challenge.status, 302, 'the POST is answered with a step-up redirect');
  t.equal(new URL(String(challenge.headers.location)).searchParams.get('acr_values'), 'urn:wardgate:acr:mfa');
  t.equal(notePosts().length, before, 'nothing reached the upstream before the step-up');

  const stored = await savedRequestValues();
  t.equal(stored.length, 1, 'one saved request is in Redis');
  const envelope = JSON.parse(stored[0]!) as Record<string, string>;
  t.same(Object.keys(envelope).sort(), ['ciphertext', 'iv', 'owner', 'tag'], 'Redis holds only the AES-GCM envelope');
  t.notOk(Buffer.from(envelope.ciphertext!, 'base64url').includes(Buffer.from('p-0001')), 'the ciphertext does not contain the body in clear');
  t.notMatch(stored[0], /p-0001|stable|%C3%84rztin/, 'the stored value does not contain the body in clear');

  stack.spans.reset();
  const toReplay = await completeTotp(browser, challenge, 'physician');
  const replayUrl = new URL(String(toReplay.headers.location), toReplay.url).href;
  const done = await browser.request(replayUrl);

  t.equal(done.status, 201, 'the demo app stored the note');
  t.match(done.body, /Note received/);
  const received = notePosts().slice(before);
  t.equal(received.length, 1, 'the upstream received the note once');
  t.equal(received[0]!.method, 'POST');
  t.equal(received[0]!.headers['content-type'], 'application/x-www-form-urlencoded');
  t.same(received[0]!.body, Buffer.from(sent), 'the upstream received the exact body bytes');
  t.equal((await savedRequestValues()).length, 0, 'the saved request is gone after use');

  // The span ends when the response has been handed to the socket, which can be just after the client read it.
  const span = await waitForSpan(stack, (candidate) => candidate.attributes['url.path'] === '/notes');
  t.equal(span.attributes['wardgate.rule'], 'notes-allow-physicians', 'the replay was decided by policy with the new elevation');

  const again = await browser.request(replayUrl);
  t.equal(again.status, 403, 'a second use of the saved request fails');
  t.equal(again.headers['x-wardgate-error'], 'WG_AUTH_SAVED_REQUEST_UNKNOWN');
  t.equal(notePosts().length, before + 1, 'the second use sent nothing upstream');
});

t.test('saved request is bound to its session', async (t) => {
  const owner = new Browser(stack.certificates.ca.cert);
  await signIn(stack, owner, 'physician');
  const other = new Browser(stack.certificates.ca.cert);
  await signIn(stack, other, 'physician');
  const before = notePosts().length;

  const challenge = await postNote(owner, { patient: 'p-0002', text: 'owner note' });
  t.equal(challenge.status, 302);
  const toReplay = await completeTotp(owner, challenge, 'physician');
  const replayUrl = new URL(String(toReplay.headers.location), toReplay.url).href;

  const stolen = await other.request(replayUrl);
  t.equal(stolen.status, 403, 'another session cannot use the saved request');
  t.equal(stolen.headers['x-wardgate-error'], 'WG_AUTH_SAVED_REQUEST_UNKNOWN');
  const anonymous = await new Browser(stack.certificates.ca.cert).request(replayUrl);
  t.equal(anonymous.status, 403, 'a browser without a session cannot use it');
  t.equal(notePosts().length, before, 'nothing was sent for the other sessions');

  const done = await owner.request(replayUrl);
  t.equal(done.status, 201, 'the owner can still use it');
  t.same(notePosts().at(-1)!.body, Buffer.from('patient=p-0002&text=owner+note'));
});

t.test('oversized POST gets a 413 page', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'physician');
  const before = notePosts().length;
  const storedBefore = (await savedRequestValues()).length;

  const response = await postNote(browser, { patient: 'p-0003', text: 'x'.repeat(70 * 1024) });
  t.equal(response.status, 413);
  t.equal(response.headers['x-wardgate-error'], 'WG_AUTH_SAVED_REQUEST_TOO_LARGE');
  t.match(String(response.headers['content-type']), /^text\/html/);
  t.match(response.body, /more than the 65536 bytes/, 'the page states the limit');
  t.match(response.body, /not saved and not sent/, 'the page says nothing was kept');
  t.equal(notePosts().length, before, 'nothing reached the upstream');
  t.equal((await savedRequestValues()).length, storedBefore, 'nothing was saved');
});

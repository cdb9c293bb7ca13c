import { PassThrough } from 'node:stream';
import { Redis } from 'ioredis';
import t from 'tap';

import { runReviewCommand } from '../../proxy/review/cli.ts';
import { ReviewQueue } from '../../proxy/review/queue.ts';
import { Browser, rawRequest, REDIS_URL, signIn, startTestStack } from '../e2e/support.ts';
import { sampleEntry } from './helpers.ts';

// A misuse label with --revoke ends the user's real sessions through the session store,
// with nothing injected: the path an analyst takes.
const stack = await startTestStack();
const redis = new Redis(REDIS_URL);
t.teardown(async () => {
  redis.disconnect();
  await stack.close();
});

async function status(cookie: string): Promise<number> {
  return (await rawRequest(stack, '/debug/headers', { headers: { accept: 'application/json', cookie } })).status;
}

t.test('misuse --revoke ends the sessions of the labelled user', async (t) => {
  const nurse = new Browser(stack.certificates.ca.cert);
  await signIn(stack, nurse, 'nurse');
  const physician = new Browser(stack.certificates.ca.cert);
  await signIn(stack, physician, 'physician');
  const nurseCookie = `__Host-wardgate_session=${nurse.cookie(stack.url, '__Host-wardgate_session')}`;
  const physicianCookie = `__Host-wardgate_session=${physician.cookie(stack.url, '__Host-wardgate_session')}`;
  const before = await status(nurseCookie);
  t.not(before, 401, 'the nurse is signed in');

  const queue = new ReviewQueue(redis, { prefix: stack.keyPrefix, maxLength: 1000 });
  const id = await queue.add(sampleEntry({ user: 'demo-nurse' }));
  const out = new PassThrough();
  const err = new PassThrough();
  let output = '';
  out.on('data', (chunk: Buffer) => (output += chunk.toString()));
  err.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await runReviewCommand(['label', id, 'misuse', '--note', 'opened a colleague chart', '--analyst', 'ana', '--revoke', '--redis', REDIS_URL, '--prefix', stack.keyPrefix], out, err);

  t.equal(code, 0, output);
  t.equal(await status(nurseCookie), 401, 'the nurse session is gone');
  t.not(await status(physicianCookie), 401, 'another user keeps the session');
});

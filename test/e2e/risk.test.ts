import t from 'tap';
import { Browser, rawRequest, signIn, startTestStack, type TestStack } from './support.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

type Outcome = 'allow' | 'step_up' | 'block' | 'other';

/** Maps Wardgate's response to a browser request onto the decision it enforced. */
function outcomeOf(status: number, location: string | undefined, idpIssuer: string): Outcome {
  if (status === 200) return 'allow';
  if (status === 302 && location?.startsWith(idpIssuer) && location.includes('acr_values=')) return 'step_up';
  if (status === 403) return 'block';
  return 'other';
}

t.test('physician ordinary days pass, a stolen session at night does not', async (t) => {
  const stack: TestStack = await startTestStack({ session: { idle_timeout: 86_400, absolute_lifetime: 7 * 86_400 } });
  t.teardown(() => stack.close());

  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'physician');
  const session = browser.cookie(stack.url, '__Host-wardgate_session');
  t.ok(session, 'signed in');
  const cookie = `__Host-wardgate_session=${session}`;
  const userAgent = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0 Safari/537.36';

  // Three ordinary day shifts from the ward's network: 08:00 to 16:00 UTC, a patient
  // from the physician's own list every 12 minutes. Each shift starts within a day of the
  // previous request, inside the session's idle timeout.
  const firstShift = new Date(stack.clock.now);
  firstShift.setUTCHours(8, 0, 0, 0);
  if (firstShift.getTime() <= stack.clock.now) firstShift.setUTCDate(firstShift.getUTCDate() + 1);
  const ownPatients = Array.from({ length: 12 }, (_, index) => `p-${String(index + 1).padStart(4, '0')}`);
  const ordinary: Outcome[] = [];
  for (let day = 0; day < 3; day++) {
    for (let step = 0; step < 40; step++) {
      stack.clock.now = firstShift.getTime() + day * 24 * HOUR + step * 12 * MINUTE;
      const response = await rawRequest(stack, `/fhir/Patient/${ownPatients[step % ownPatients.length]}`, {
        headers: { cookie, accept: 'text/html', 'user-agent': userAgent },
        localAddress: '127.0.0.1',
      });
      ordinary.push(outcomeOf(response.status, response.headers.location, stack.idp.issuer));
    }
  }
  t.same(ordinary.filter((outcome) => outcome !== 'allow'), [], 'every request of the ordinary days is allowed');

  // The same session at 03:00 the next night, from another network and another client,
  // opening dozens of other patients' records in quick succession.
  const night = firstShift.getTime() + 3 * 24 * HOUR - 5 * HOUR;
  const burst: Outcome[] = [];
  for (let index = 0; index < 40; index++) {
    stack.clock.now = night + index * 15_000;
    const response = await rawRequest(stack, `/fhir/Patient/p-${String(100 + index).padStart(4, '0')}`, {
      headers: { cookie, accept: 'text/html', 'user-agent': 'python-requests/2.32' },
      localAddress: '127.66.6.6',
    });
    burst.push(outcomeOf(response.status, response.headers.location, stack.idp.issuer));
  }
  t.notOk(burst.includes('other'), `every answer is allow, step_up or block: ${burst.join(',')}`);
  t.ok(burst.filter((outcome) => outcome === 'step_up' || outcome === 'block').length >= 30, `most of the burst is stepped up or blocked: ${burst.join(',')}`);
  t.not(burst.at(-1), 'allow', 'the end of the burst is not allowed');
});

import t from 'tap';
import { PatientPathRedactor } from '../../proxy/telemetry/patient-redaction.ts';
import { Browser, rawRequest, signIn, startTestStack, waitForSpan, type TestStack } from './support.ts';

let stack: TestStack;

t.before(async () => {
  stack = await startTestStack();
});
t.teardown(() => stack.close());

async function sessionCookie(username: string): Promise<string> {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, username);
  return `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
}

t.test('blocked API request carries the trace id', async (t) => {
  const cookie = await sessionCookie('clerk');
  stack.spans.reset();
  const response = await rawRequest(stack, '/fhir/Patient/p-0001/$everything', { headers: { cookie, accept: 'application/json' } });

  t.equal(response.status, 403);
  const body = JSON.parse(response.body) as { error: string; incident_id: string };
  t.equal(body.error, 'WG_ACCESS_BLOCKED');
  t.match(body.incident_id, /^[0-9a-f]{32}$/);
  const span = await waitForSpan(stack, (candidate) => candidate.spanContext().traceId === body.incident_id);
  t.ok(span, 'a span has the incident id as its trace id');
  t.equal(span?.attributes['wardgate.rule'], 'export-others-block');
  t.equal(span?.attributes['wardgate.decision'], 'block');
});

t.test('encoded dollar cannot bypass the export rule', async (t) => {
  const cookie = await sessionCookie('clerk');
  stack.spans.reset();
  const response = await rawRequest(stack, '/fhir/Patient/p-0001/%24everything', { headers: { cookie, accept: 'application/json' } });

  t.equal(response.status, 403);
  const body = JSON.parse(response.body) as { incident_id: string };
  const span = await waitForSpan(stack, (candidate) => candidate.spanContext().traceId === body.incident_id);
  const pseudonym = new PatientPathRedactor(stack.config.patient_key).pseudonym('p-0001');
  t.equal(span?.attributes['url.path'], `/fhir/Patient/${pseudonym}/$everything`, 'the patient id is a pseudonym');
  t.equal(span?.attributes['wardgate.rule'], 'export-others-block');
});

t.test('blocked browser request gets an HTML page', async (t) => {
  const cookie = await sessionCookie('clerk');
  const response = await rawRequest(stack, '/fhir/Observation?patient=p-0001', { headers: { cookie, accept: 'text/html' } });

  t.equal(response.status, 403);
  t.match(String(response.headers['content-type']), /^text\/html/);
  const incident = String(response.headers['x-wardgate-incident']);
  t.match(incident, /^[0-9a-f]{32}$/);
  t.match(response.body, new RegExp(`<code>${incident}</code>`), 'the page shows the incident id');
  t.notMatch(response.body, /risk|records-no-observations/, 'the page reveals no policy internals');
});

t.test('physician export steps up at the IdP', async (t) => {
  const cookie = await sessionCookie('physician');
  const response = await rawRequest(stack, '/fhir/Patient/p-0001/$everything', { headers: { cookie, accept: 'text/html' } });

  t.equal(response.status, 302);
  const location = new URL(String(response.headers.location));
  t.equal(location.origin, new URL(stack.idp.issuer).origin);
  t.equal(location.searchParams.get('acr_values'), 'urn:wardgate:acr:mfa');
  t.equal(location.searchParams.get('max_age'), '0');
});

t.test('API client export gets the RFC 9470 challenge', async (t) => {
  const cookie = await sessionCookie('physician');
  const response = await rawRequest(stack, '/fhir/Patient/p-0002/$everything', { headers: { cookie, accept: 'application/json' } });

  t.equal(response.status, 401);
  const challenge = String(response.headers['www-authenticate']);
  t.match(challenge, /error="insufficient_user_authentication"/);
  t.match(challenge, /acr_values="urn:wardgate:acr:mfa"/);
  t.match(challenge, /max_age=0/);
});

t.test('physician export succeeds after a TOTP step-up', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'physician');
  const account = stack.idp.accounts.find((candidate) => candidate.username === 'physician')!;

  const stepUpPage = await browser.follow(await browser.request(`${stack.url}/fhir/Patient/p-0003/$everything`));
  t.match(stepUpPage.body, /code/i, 'the IdP asks for the second factor');
  const done = await browser.follow(await browser.submitForm(stepUpPage, { username: 'physician', password: account.password, code: stack.idp.totp(account.totp_secret, Date.now()) }));

  t.equal(done.status, 200);
  t.equal(new URL(done.url).pathname, '/fhir/Patient/p-0003/$everything');
  t.match(JSON.parse(done.body), { resourceType: 'Bundle' });
});

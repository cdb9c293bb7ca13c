import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import t from 'tap';
import { PatientPathRedactor } from '../../proxy/telemetry/patient-redaction.ts';
import { atDaytime, Browser, rawRequest, signIn, startTestStack, waitForSpan, type TestStack } from './support.ts';

let stack: TestStack;

t.before(async () => {
  stack = await startTestStack();
});
t.teardown(() => stack.close());

t.test('login flow ends at the demo app', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  const page = await signIn(stack, browser, 'physician');

  t.equal(page.status, 200);
  t.match(page.url, new RegExp(`^${stack.url}/`));
  t.match(page.body, /Patients/);
  t.match(page.body, /physician/, 'the app sees the signed-in user from the assertion');
  t.ok(browser.cookie(stack.url, '__Host-wardgate_session'), 'session cookie is set');
});

t.test('anonymous API request gets a bearer challenge', async (t) => {
  const response = await rawRequest(stack, '/fhir/Patient', { headers: { accept: 'application/json' } });

  t.equal(response.status, 401);
  t.match(String(response.headers['www-authenticate']), /^Bearer realm="wardgate"/);
});

for (const group of ['X25519MLKEM768', 'X25519']) {
  t.test(`client offering only ${group} connects`, async (t) => {
    stack.spans.reset();
    const response = await rawRequest(stack, '/fhir/Patient', { headers: { accept: 'application/json' }, ecdhCurve: group });

    t.equal(response.status, 401);
    t.equal(response.group, group, 'the client negotiated the offered group');
    const span = await waitForSpan(stack, (candidate) => candidate.attributes['url.path'] === '/fhir/Patient');
    t.equal(span.attributes['wardgate.tls.group'], group, 'the span records the group the client saw');
  });
}

t.test('span carries user, route, risk and decision', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'nurse');
  stack.spans.reset();
  const response = await browser.request(`${stack.url}/fhir/Patient/p-0001`);

  t.equal(response.status, 200);
  const pseudonym = new PatientPathRedactor(stack.config.patient_key).pseudonym('p-0001');
  const span = await waitForSpan(stack, (candidate) => candidate.attributes['url.path'] === `/fhir/Patient/${pseudonym}`);
  t.equal(span.attributes['enduser.id'], stack.idp.accounts.find((account) => account.username === 'nurse')!.subject);
  t.equal(span.attributes['wardgate.route'], 'ehr');
  t.equal(span.attributes['wardgate.decision'], 'allow');
  t.type(span.attributes['wardgate.rule'], 'string');
  t.type(span.attributes['wardgate.risk'], 'number');
  t.equal(span.attributes['wardgate.tls.group'], 'X25519MLKEM768');
});

t.test('forged identity headers never reach the upstream', async (t) => {
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'clerk');
  // The demo policy steps up records work from 22:00 to 06:00; this test is about headers.
  t.teardown(atDaytime(stack));
  const forged = {
    'X-Forwarded-User': 'chief-of-medicine',
    'x_forwarded_email': 'chief@example.org',
    'X-Auth-Request-User': 'chief-of-medicine',
    'Remote-User': 'chief-of-medicine',
    'Remote-Groups': 'admins',
    'X-Auth-User': 'chief-of-medicine',
    'remote_user': 'chief-of-medicine',
    'X-Wardgate-Assertion': 'forged.jwt.value',
    'x_wardgate_assertion': 'forged.jwt.value',
    'X-Forwarded-For': '203.0.113.9',
    'X-Forwarded-Host': 'evil.example',
    'X-Forwarded-Proto': 'http',
  };
  const response = await browser.request(`${stack.url}/debug/headers`, { headers: { ...forged, accept: 'application/json' } });

  t.equal(response.status, 200);
  const received = (JSON.parse(response.body) as { headers: Record<string, string> }).headers;
  for (const name of ['remote-groups', 'x-auth-user', 'x-forwarded-user', 'x_forwarded_email', 'x-auth-request-user', 'remote-user', 'remote_user', 'x_wardgate_assertion']) {
    t.equal(received[name], undefined, `${name} is removed`);
  }
  t.equal(received['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For is the socket address');
  t.equal(received['x-forwarded-host'], new URL(stack.url).host);
  t.equal(received['x-forwarded-proto'], 'https');
  t.not(received.cookie ?? '', /__Host-wardgate/, 'Wardgate cookies stay out of the upstream request');

  const assertion = received['x-wardgate-assertion'];
  t.not(assertion, 'forged.jwt.value');
  const keys = JSON.parse((await rawRequest(stack, '/.well-known/wardgate/jwks.json')).body) as JSONWebKeySet;
  const { payload } = await jwtVerify(assertion!, createLocalJWKSet(keys), { issuer: 'wardgate', audience: 'ehr', algorithms: ['ES256'], currentDate: new Date(stack.clock.now) });
  t.equal(payload.sub, stack.idp.accounts.find((account) => account.username === 'clerk')!.subject);
  t.same(payload.groups, ['records']);
});

t.test('misspelled policy key fails start-up with line and column', async (t) => {
  const dir = t.testdir({
    'policy.yaml': 'version: 1\nrules:\n  - id: allow-all\n    acton: allow\n',
    // Start-up reads the policy before the certificates; these only need to exist.
    'server.crt': 'placeholder',
    'server.key': 'placeholder',
    'wardgate.yaml': [
      'tls: { cert: server.crt, key: server.key }',
      'oidc: { issuer: "https://localhost:1", client_id: wardgate }',
      'redis: { url: memory }',
      'policy: policy.yaml',
      `model: ${shippedModel()}`,
      'routes:',
      '  - { id: ehr, host: "*", upstream: "http://127.0.0.1:9" }',
      '',
    ].join('\n'),
  });
  const result = await runCli(['start', '--config', `${dir}/wardgate.yaml`]);

  t.equal(result.code, 1);
  t.match(result.stderr, /policy\.yaml:4:5: rule allow-all: .*acton/);
  t.match(result.stderr, /did you mean "action"/);
});

t.test('misspelled config key fails start-up with line and column', async (t) => {
  const dir = t.testdir({ 'wardgate.yaml': 'listen: { port: 8443 }\npolcy: policy.yaml\n' });
  const result = await runCli(['start', '--config', `${dir}/wardgate.yaml`]);

  t.equal(result.code, 1);
  t.match(result.stderr, /wardgate\.yaml:2:1: polcy: unknown option; did you mean "policy"\?/);
});

function runCli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, WARDGATE_OIDC_CLIENT_SECRET: 'test-secret', WARDGATE_PATIENT_KEY: 'a'.repeat(64) };
  return new Promise((resolve) => {
    execFile(process.execPath, ['proxy/cli/wardgate.ts', ...argv], { env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** The model file shipped in scorer/models, whatever its version. */
function shippedModel(): string {
  const folder = fileURLToPath(new URL('../../scorer/models/', import.meta.url));
  return folder + readdirSync(folder).find((name) => name.endsWith('.onnx'))!;
}

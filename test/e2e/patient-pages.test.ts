import t from 'tap';
import type { Decision, DecisionContext } from '../../policy/decision.ts';
import type { PolicyPort } from '../../proxy/ports.ts';
import { DEMO_PATIENT_PATHS } from '../../demo/demo-stack.ts';
import { Browser, rawRequest, signIn, startTestStack, type TestStack } from './support.ts';

const contexts: DecisionContext[] = [];
/** Allows every request and keeps the features the scorer passed to the policy. */
const standIn: PolicyPort = {
  hash: 'stand-in',
  decide(context: DecisionContext): Decision {
    contexts.push(context);
    return { action: 'allow', rule: 'allow-all', reasons: [], risk: context.risk };
  },
};

let stack: TestStack;
let cookie: string;

t.before(async () => {
  stack = await startTestStack({ wardgateOptions: { policy: () => standIn } });
  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'physician');
  cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
});
t.teardown(() => stack.close());

/** Requests `path` with the physician's session and returns the status and the features the policy saw. */
async function open(path: string): Promise<{ status: number; body: string; features: Record<string, number> | undefined }> {
  const before = contexts.length;
  const response = await rawRequest(stack, path, { headers: { cookie, accept: 'text/html' } });
  const features = contexts.length > before ? contexts.at(-1)?.features : undefined;
  return { status: response.status, body: response.body, features };
}

t.test('demo configures its patient page template', async (t) => {
  t.same(stack.config.scorer?.patient_paths, DEMO_PATIENT_PATHS);
  t.same(DEMO_PATIENT_PATHS, ['/patients/{id}']);
});

t.test('patient page is scored as a patient access', async (t) => {
  const first = await open('/patients/p-0016');
  const second = await open('/patients/p-0016');
  const read = await open('/fhir/Patient/p-0016');

  t.equal(first.status, 200);
  t.equal(first.features?.patient_access, 1, 'the page names one patient');
  t.equal(first.features?.patient_new_for_user, 1);
  t.equal(first.features?.care_unknown, 0, 'the care source answered for the patient');
  t.equal(first.features?.outside_care_share, 0, 'the physician cares for p-0016');
  t.equal(second.features?.patient_new_for_user, 0, 'the page response recorded the patient in the history');
  t.equal(read.features?.patient_access, 1);
  t.equal(read.features?.patient_new_for_user, 0, 'the FHIR read finds the same patient');
});

t.test('patient list page names no patient', async (t) => {
  const home = await open('/');

  t.equal(home.status, 200);
  t.equal(home.features?.patient_access, 0);
});

t.test('invalid id in a patient page is rejected', async (t) => {
  const before = contexts.length;
  const invalid = await rawRequest(stack, '/patients/x%20y', { headers: { cookie, accept: 'application/json' } });
  const page = await open('/patients/x%20y');

  t.equal(invalid.status, 400);
  t.equal(page.status, 400, 'a browser gets the 400 too');
  const body = JSON.parse(invalid.body) as { error: string; message: string };
  t.equal(body.error, 'WG_HTTP_INVALID_PATIENT_ID');
  t.match(body.message, 'Invalid patient id in the path segment at {id} of /patients/{id}');
  t.match(body.message, 'such as /patients/123.');
  t.equal(contexts.length, before, 'the request never reached the policy');
});

t.test('patient page hides observations from records staff', async (t) => {
  const clerk = new Browser(stack.certificates.ca.cert);
  await signIn(stack, clerk, 'clerk');
  const clerkCookie = `__Host-wardgate_session=${clerk.cookie(stack.url, '__Host-wardgate_session')}`;

  const forClerk = await rawRequest(stack, '/patients/p-0017', { headers: { cookie: clerkCookie, accept: 'text/html' } });
  const forPhysician = await open('/patients/p-0017');

  t.equal(forClerk.status, 200);
  t.match(forClerk.body, 'Observations are not shown to records staff.');
  t.notMatch(forClerk.body, /<li>[^<]*: [0-9.]+ /, 'no observation value on the page');
  t.match(forPhysician.body, /<li>[^<]*: [0-9.]+ /, 'the physician sees the observations');
});

import t from 'tap';
import type { Decision } from '../../policy/decision.ts';
import { invalidPatientIds, scoreAndDecide, type RequestFacts } from '../../proxy/pipeline/decide.ts';
import { compilePatientPaths, NO_PATIENT_PATHS } from '../../scorer/features/patient-paths.ts';
import type { PolicyPort, ScorerPort } from '../../proxy/ports.ts';
import { ScorerError } from '../../scorer/errors.ts';

const ALLOW: Decision = { action: 'allow', rule: 'default', reasons: ['no rule matched'], risk: 0 };
const policy: PolicyPort = { hash: 'sha256:test', decide: () => ALLOW };
const silent = { warn: () => {} };

function facts(failOpen: boolean): RequestFacts {
  const mode = failOpen ? 'open' : 'closed';
  return {
    route: { id: 'ehr', host: '*', path_prefix: '/', upstream: 'http://127.0.0.1:1', sensitivity: 'normal', fail_mode: { redis: mode, scorer: mode, idp: mode } },
    principal: { subject: 'dr-1', groups: ['physicians'], method: 'session' },
    method: 'GET',
    host: 'ehr.example',
    path: '/fhir/Patient/p-0061',
    query: '',
    ip: '10.0.0.1',
    userAgent: 'test',
    tls: { protocol: 'TLSv1.3', group: 'X25519MLKEM768' },
    elevatedAcr: [],
    time: Date.UTC(2025, 2, 3, 9),
  };
}

const rejecting: ScorerPort = {
  score: async () => {
    throw new ScorerError('WG_SCORER_INVALID_INPUT', 'Invalid client ip: expected an IPv4 or IPv6 address, received "x".', { detail: { field: 'ip' } });
  },
};

for (const failOpen of [true, false]) {
  t.test(`invalid input blocks on a fail-${failOpen ? 'open' : 'closed'} route`, async (t) => {
    const { decision, scored } = await scoreAndDecide(rejecting, policy, facts(failOpen), silent);

    t.equal(decision.action, 'block');
    t.equal(decision.rule, 'request.invalid_input');
    t.match(decision.reasons[0], /Invalid client ip/);
    t.equal(scored.failedDependency, undefined, 'no fail mode applies');
  });
}

t.test('invalid patient ids are found before scoring', async (t) => {
  const error = invalidPatientIds('/fhir/Patient/p-0061', 'subject=x%20y', NO_PATIENT_PATHS);

  t.equal(error?.code, 'WG_SCORER_INVALID_INPUT');
  t.match(error?.message, /search parameter subject/);
  t.equal(invalidPatientIds('/fhir/Patient/p-0061', 'subject=Patient/p-0062', NO_PATIENT_PATHS), null);
});

t.test('invalid ids in patient path templates are found', async (t) => {
  const patientPaths = compilePatientPaths(['/patients/{id}']);
  const error = invalidPatientIds('/patients/x%20y', 'tab=notes', patientPaths);

  t.equal(error?.code, 'WG_SCORER_INVALID_INPUT');
  t.equal(error?.status, 400);
  t.match(error?.message, 'Invalid patient id in the path segment at {id} of /patients/{id}');
  t.match(error?.message, 'such as /patients/123.');
  t.equal(invalidPatientIds('/patients/p-0061', '', patientPaths), null, 'a valid id passes');
  t.equal(invalidPatientIds('/patients/x%20y', '', NO_PATIENT_PATHS), null, 'without templates the page names no patient');
});

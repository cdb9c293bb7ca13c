import t from 'tap';
import { PatientFieldPseudonymizer } from '../../proxy/audit/patient-fields.ts';
import { PatientPseudonymizer } from '../../scorer/features/patient.ts';
import { PATIENT_KEY } from './helpers.ts';

const fields = new PatientFieldPseudonymizer(PATIENT_KEY);
const pseudonym = (id: string) => new PatientPseudonymizer(PATIENT_KEY).pseudonymize(id);

const cases: [string, string, string[]][] = [
  ['/fhir/Patient/p-0001', `/fhir/Patient/~${pseudonym('p-0001')}`, ['p-0001']],
  ['/fhir/Patient/p-0001/$everything', `/fhir/Patient/~${pseudonym('p-0001')}/$everything`, ['p-0001']],
  ['/fhir/Observation?patient=p-1,Patient/p-2&subject=p-3', `/fhir/Observation?patient=~${pseudonym('p-1')},Patient/~${pseudonym('p-2')}&subject=~${pseudonym('p-3')}`, ['p-1', 'p-2', 'p-3']],
  ['/patients/p-0042', `/patients/~${pseudonym('p-0042')}`, ['p-0042']],
  ['/fhir/Patient?name=smith', '/fhir/Patient?name=smith', []],
  ['/', '/', []],
];

for (const [path, expected, ids] of cases) {
  t.test(`path ${path}`, async (t) => {
    const result = fields.pseudonymizePath(path);
    t.equal(result.path, expected);
    t.same(result.patients, ids.map(pseudonym));
    t.equal(result.redacted, false);
  });
}

t.test('unparsable patient values are redacted', async (t) => {
  const result = fields.pseudonymizePath('/fhir/Patient/a%20b?patient=x%20y');
  t.same(result, { path: '/fhir/Patient/~redacted?patient=~redacted', patients: [], redacted: true });
});

t.test('entry with patients keeps its pseudonyms', async (t) => {
  const path = `/fhir/Observation?patient=~${pseudonym('p-1')}&code=_`;
  const result = fields.apply({ kind: 'break_glass', event: 'claim', path, patients: [pseudonym('p-1')] });
  t.equal(result.path, path);
  t.same(result.patients, [pseudonym('p-1')]);
  t.equal(result.path_redacted, undefined);
});

t.test('patient_id becomes patient and the entry is copied', async (t) => {
  const entry = { kind: 'break_glass', patient_id: 'p-7', justification: 'cardiac arrest', reason_code: 'emergency' };
  const result = fields.apply(entry);
  t.same(result, { kind: 'break_glass', patient: pseudonym('p-7'), justification: 'cardiac arrest', reason_code: 'emergency' });
  t.equal(entry.patient_id, 'p-7', 'the input is not changed');
});

t.test('short key is rejected', async (t) => {
  t.throws(() => new PatientFieldPseudonymizer(new Uint8Array(8)), { code: 'WG_SCORER_INVALID_OPTION' });
});

import t from 'tap';
import { PatientTargetPseudonymizer, REDACTED } from '../../proxy/patient-target.ts';
import { compilePatientPaths } from '../../scorer/features/patient-paths.ts';
import { extractPatientIds } from '../../scorer/features/patient.ts';
import { PATIENT_KEY } from './helpers.ts';

const pseudonymizer = new PatientTargetPseudonymizer(PATIENT_KEY);
const token = (id: string) => `~${pseudonymizer.pseudonym(id)}`;

/** Each raw target, the form recorded and the ids it names. */
const cases: Array<[string, string, string[]]> = [
  ['/fhir/Observation?patient=Patient%2Fp-0103', `/fhir/Observation?patient=Patient/${token('p-0103')}`, ['p-0103']],
  ['/fhir/Observation?subject=Patient%2Fp-0113', `/fhir/Observation?subject=Patient/${token('p-0113')}`, ['p-0113']],
  ['/fhir/Observation?patient=p%2D0131', `/fhir/Observation?patient=${token('p-0131')}`, ['p-0131']],
  ['/fhir/Observation?patient=%70-0132', `/fhir/Observation?patient=${token('p-0132')}`, ['p-0132']],
  ['/fhir/Observation?%70atient=p-0133', `/fhir/Observation?%70atient=${token('p-0133')}`, ['p-0133']],
  ['/fhir/Patient?_id=p-0108', `/fhir/Patient?_id=${token('p-0108')}`, ['p-0108']],
  ['/fhir/Patient/_search?_id=p-0109', `/fhir/Patient/_search?_id=${token('p-0109')}`, ['p-0109']],
  ['/fhir/Observation?_id=o-1', '/fhir/Observation?_id=o-1', []],
  ['/fhir/Observation?subject:Patient=p-0106', `/fhir/Observation?subject:Patient=${token('p-0106')}`, ['p-0106']],
  ['/fhir/patient/p-0118', `/fhir/patient/${token('p-0118')}`, ['p-0118']],
  ['/patients/p-0110', `/patients/${token('p-0110')}`, ['p-0110']],
  ['/patients/p-0150%2F', `/patients/${token('p-0150')}%2F`, ['p-0150']],
  ['/fhir/Patient/p-0001/$everything', `/fhir/Patient/${token('p-0001')}/$everything`, ['p-0001']],
  ['/fhir/Patient/p-4/_history/p-4', `/fhir/Patient/${token('p-4')}/_history/${token('p-4')}`, ['p-4']],
  ['/fhir/Observation?patient=p-1,Patient/p-2&subject=p-3&code=1234', `/fhir/Observation?patient=${token('p-1')},Patient/${token('p-2')}&subject=${token('p-3')}&code=1234`, ['p-1', 'p-2', 'p-3']],
  ['/fhir/Encounter?_has=Patient/p-5', `/fhir/Encounter?_has=Patient/${token('p-5')}`, ['p-5']],
  ['/fhir/Observation?patient:missing=true', '/fhir/Observation?patient:missing=true', []],
  ['/fhir/Patient?name=smith', '/fhir/Patient?name=smith', []],
  ['/static/app.js?v=3', '/static/app.js?v=3', []],
  ['/FHIR/Patient/p-0201', `/FHIR/Patient/${token('p-0201')}`, ['p-0201']],
  ['/fhir/Patient;v=1/p-0202', `/fhir/Patient;v=1/${token('p-0202')}`, ['p-0202']],
  ['/fhir/Observation?patient[]=p-0203', `/fhir/Observation?patient[]=${token('p-0203')}`, ['p-0203']],
  ['/fhir/Observation?x=1;patient=p-0204&code=1', `/fhir/Observation?x=1;patient=${token('p-0204')}&code=1`, ['p-0204']],
  ['/fhir/Patient/$match?_id=p-0205', `/fhir/Patient/$match?_id=${token('p-0205')}`, ['p-0205']],
  ['/fhir/Patient/_history?_id=p-0206', `/fhir/Patient/_history?_id=${token('p-0206')}`, ['p-0206']],
  ['/fhir/Observation?patient[0][ref]=p-0207&patient[=p-0208', `/fhir/Observation?patient[0][ref]=${token('p-0207')}&patient[=${token('p-0208')}`, ['p-0207', 'p-0208']],
  ['/fhir/Observation?patient[]:Group=p-0209&+patient=p-0210&patient[].x=p-0211', `/fhir/Observation?patient[]:Group=${token('p-0209')}&+patient=${token('p-0210')}&patient[].x=${token('p-0211')}`, ['p-0209', 'p-0210', 'p-0211']],
  ['/fhir/Patient?_id%00=p-0212', `/fhir/Patient?_id%00=${token('p-0212')}`, ['p-0212']],
  ['/fhir/Observation?patient=https://ehr.example/fhir/Patient/p-0213', `/fhir/Observation?patient=https://ehr.example/fhir/Patient/${token('p-0213')}`, ['p-0213']],
  ['/fhir/Observation?subject=Patient/p-0214/_history/2', `/fhir/Observation?subject=Patient/${token('p-0214')}/_history/2`, ['p-0214']],
  ['/fhir/Coverage?beneficiary=p-0215', `/fhir/Coverage?beneficiary=${token('p-0215')}`, ['p-0215']],
  ['/fhir/Coverage?beneficiary._id=p-0216', `/fhir/Coverage?beneficiary._id=${token('p-0216')}`, ['p-0216']],
  ['/fhir/Observation?patient._id=p-0217', `/fhir/Observation?patient._id=${token('p-0217')}`, ['p-0217']],
  ['/fhir/Observation?subject:Patient._id=p-0218', `/fhir/Observation?subject:Patient._id=${token('p-0218')}`, ['p-0218']],
  ['/fhir/Observation?performer=Patient/p-0219&focus=Patient/p-0220', `/fhir/Observation?performer=Patient/${token('p-0219')}&focus=Patient/${token('p-0220')}`, ['p-0219', 'p-0220']],
  ['/fhir/Patient?link=Patient/p-0221', `/fhir/Patient?link=Patient/${token('p-0221')}`, ['p-0221']],
];

t.test('other search forms name the patients the scorer reads', async (t) => {
  const targets = [
    '/fhir/Coverage?beneficiary=p-0222',
    '/fhir/Coverage/_search?beneficiary=Patient/p-0223&beneficiary._id=p-0224',
    '/fhir/Observation?beneficiary=b-1',
    '/fhir/Observation?patient._id=p-0225',
    '/fhir/Observation?subject:Patient._id=p-0226,Patient/p-0227',
    '/fhir/Observation?subject:Patient.name=Patient/p-0228&patient._id:not=p-0229',
    '/fhir/Observation?performer=Patient/p-0230&focus=Patient/p-0231/_history/2',
    '/fhir/Appointment?actor=https://ehr.example/fhir/Patient/p-0232',
    '/fhir/Patient?link=Patient/p-0233',
    '/fhir/Patient/p-0234?link=Patient/p-0235',
    '/fhir/Observation?patient:not=Patient/p-0236&subject:Group=Patient/p-0237',
    '/fhir/Observation?performer=Practitioner/pr-1&_content=patient/%20rash',
  ];

  for (const target of targets) {
    const scorerIds = extractPatientIds(target).map((id) => pseudonymizer.pseudonym(id));
    t.same(pseudonymizer.pseudonymizeTarget(target).patients, scorerIds, target);
  }
});

t.test('chained patient data stays redacted', async (t) => {
  const result = pseudonymizer.pseudonymizeTarget('/fhir/Observation?patient._id:not=p-0238&subject.name=smith');

  t.equal(result.target, `/fhir/Observation?patient._id:not=${REDACTED}&subject.name=${REDACTED}`);
  t.same(result.patients, []);
});

t.test('paths without a fhir segment differ from the scorer', async (t) => {
  // The pseudonymizer replaces ids after any Patient segment, and the scorer reads only FHIR
  // paths, so this target names a patient in the audit trail but in no baseline.
  const result = pseudonymizer.pseudonymizeTarget('/r4/Patient/p-0239');

  t.equal(result.target, `/r4/Patient/${token('p-0239')}`);
  t.same(extractPatientIds('/r4/Patient/p-0239'), []);
});

t.test('references name the patients the scorer reads', async (t) => {
  for (const target of ['/fhir/Observation?patient=https://ehr.example/fhir/Patient/p-0213', '/fhir/Observation?subject=Patient/p-0214/_history/2', '/fhir/Observation?patient=p-1,http://other.example/Patient/p-2']) {
    const scorerIds = extractPatientIds(target).map((id) => pseudonymizer.pseudonym(id));
    t.same(pseudonymizer.pseudonymizeTarget(target).patients, scorerIds, target);
  }
});

for (const [target, expected, ids] of cases) {
  t.test(`target ${target}`, async (t) => {
    const result = pseudonymizer.pseudonymizeTarget(target);
    t.equal(result.target, expected);
    t.same(result.patients, ids.map((id) => pseudonymizer.pseudonym(id)));
    t.equal(result.redacted, false);
    t.notMatch(result.target, /p-0\d{3}|p%2D|%70-/, 'no clear patient id');
  });
}

/** Targets with parts that name or describe a patient but are no valid id: those parts become `~redacted`. */
const redactedCases: Array<[string, string, string[]]> = [
  ['/fhir/Patient/p-0061?subject=x%20y', `/fhir/Patient/${token('p-0061')}?subject=${REDACTED}`, ['p-0061']],
  ['/fhir/Observation?subject:Patient.name=smith&code=1', `/fhir/Observation?subject:Patient.name=${REDACTED}&code=1`, []],
  ['/fhir/Patient?identifier=urn:mrn|12345', `/fhir/Patient?identifier=${REDACTED}`, []],
  ['/fhir/Observation?patient=Group/p-0160', `/fhir/Observation?patient=${REDACTED}`, []],
  ['/fhir/Pa%ZZ/p-0170?patient=p-0171', `/fhir/${REDACTED}`, []],
  ['/fhir/Observation?patient=%ZZp-0172', `/fhir/Observation?${REDACTED}`, []],
  [`/fhir/Patient/${'x'.repeat(80)}`, `/fhir/Patient/${REDACTED}`, []],
];

for (const [target, expected, ids] of redactedCases) {
  t.test(`target ${target.slice(0, 60)} is redacted`, async (t) => {
    const result = pseudonymizer.pseudonymizeTarget(target);
    t.equal(result.target, expected);
    t.same(result.patients, ids.map((id) => pseudonymizer.pseudonym(id)));
    t.equal(result.redacted, true);
  });
}

t.test('planted pseudonym is redacted in a raw target', async (t) => {
  const planted = token('p-0001');
  const result = pseudonymizer.pseudonymizeTarget(`/fhir/Patient/${planted}`);

  t.equal(result.target, `/fhir/Patient/${REDACTED}`);
  t.same(result.patients, []);
});

t.test('pseudonymised target passes again unchanged', async (t) => {
  const once = pseudonymizer.pseudonymizeTarget('/fhir/Patient/p-0001?patient=p-0002&subject=x%20y');
  const twice = pseudonymizer.pseudonymizeTarget(once.target, { acceptPseudonyms: true });

  t.equal(twice.target, once.target);
  t.same(twice.patients, once.patients);
});

t.test('other values are dropped on request', async (t) => {
  const result = pseudonymizer.pseudonymizeTarget('/fhir/Observation?patient=p-1&code=8867-4', { dropOtherValues: true });

  t.equal(result.target, `/fhir/Observation?patient=${token('p-1')}&code=_`);
});

t.test('non-string target gives an empty target', async (t) => {
  t.same(pseudonymizer.pseudonymizeTarget(undefined as unknown as string), { target: '', patients: [], redacted: false });
});

t.test('configured page paths are pseudonymized like the scorer reads them', async (t) => {
  const withPaths = new PatientTargetPseudonymizer(PATIENT_KEY, compilePatientPaths(['/pacs/viewer/{id}/series']));
  const cases: Array<[string, string, string[]]> = [
    ['/pacs/viewer/p-0201/series', `/pacs/viewer/${token('p-0201')}/series`, ['p-0201']],
    ['/pacs/viewer/p-0202/series/4?frame=p-0202', `/pacs/viewer/${token('p-0202')}/series/4?frame=${token('p-0202')}`, ['p-0202']],
    ['/pacs/viewer/p-0203/studies', '/pacs/viewer/p-0203/studies', []],
    ['/PACS/viewer;v=1/p-0204/series', `/PACS/viewer;v=1/${token('p-0204')}/series`, ['p-0204']],
    ['/pacs/viewer/bad%20id/series', `/pacs/viewer/${REDACTED}/series`, []],
  ];

  for (const [raw, recorded, ids] of cases) {
    const result = withPaths.pseudonymizeTarget(raw);
    t.equal(result.target, recorded, raw);
    t.same(result.patients, ids.map((id) => pseudonymizer.pseudonym(id)), `${raw}: patients`);
  }
  t.equal(pseudonymizer.pseudonymizeTarget('/pacs/viewer/p-0201/series').target, '/pacs/viewer/p-0201/series', 'without the setting the id is not recognised');
});

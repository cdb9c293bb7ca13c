import t from 'tap';

import { PatientPseudonymizer, extractPatientIds, isBulkExport } from '../../scorer/features/patient.ts';

t.test('patient ids come from FHIR paths', async (t) => {
  t.same(extractPatientIds('/fhir/Patient/123'), ['123']);
  t.same(extractPatientIds('/fhir/Patient/abc-1.2/$everything'), ['abc-1.2']);
  t.same(extractPatientIds('/fhir/Observation?patient=42'), ['42']);
  t.same(extractPatientIds('/fhir/Observation?patient=Patient/42&category=laboratory'), ['42']);
  t.same(extractPatientIds('/fhir/Observation?subject=Patient%2F43'), ['43']);
  t.same(extractPatientIds('/fhir/Observation?patient=1,2&patient=2'), ['1', '2']);
  t.same(extractPatientIds('/ehr/api/fhir/Patient/7'), ['7']);
  t.same(extractPatientIds('/fhir/Patient?name=smith'), []);
  t.same(extractPatientIds('/fhir/Patient/$match'), []);
  t.same(extractPatientIds('/app/main.js?patient=9'), [], 'only FHIR paths name patients');
  t.same(extractPatientIds('/fhir/Encounter?location=w1'), []);
  t.same(extractPatientIds('/fhir/Observation?subject:Patient=p-0106'), ['p-0106'], 'type modifier');
  t.same(extractPatientIds('/fhir/Patient?_id=p-0108'), ['p-0108'], '_id on a Patient search');
  t.same(extractPatientIds('/fhir/Patient/_search?_id=p-0109'), ['p-0109'], '_id on a Patient _search');
  t.same(extractPatientIds('/fhir/Observation?_id=o-1'), [], '_id on another type');
  t.same(extractPatientIds('/fhir/patient/p-0118'), ['p-0118'], 'lowercase resource type');
  t.same(extractPatientIds('/fhir/Observation?patient=p%2D0131&subject=patient/p-0132'), ['p-0131', 'p-0132'], 'escapes and lowercase references');
  t.same(extractPatientIds('/fhir/Observation?subject:Group=g-1&patient:missing=true'), [], 'other modifiers name no patient');
  t.same(extractPatientIds('/fhir/Patient/p-0001?patient=p-0026'), ['p-0001'], 'a read names only the patient in its path');
  t.same(extractPatientIds('/fhir/Patient?name=smith&subject=Patient/p-0026'), [], 'the Patient type has no patient or subject parameter');
  t.same(extractPatientIds('/fhir/Patient/p-0001/$everything?patient=p-0026'), ['p-0001'], 'nor an operation on one patient');
});

t.test('patient ids behind other spellings', async (t) => {
  // Case-insensitive routing (ASP.NET Core) and servers that drop `;` path parameters (Tomcat,
  // Jetty) serve these as the plain FHIR forms. qs (Express) and PHP read `patient[]` as
  // `patient`, and some servers split the query at `;`.
  t.same(extractPatientIds('/FHIR/Patient/p-0001'), ['p-0001'], 'the base segment in any case');
  t.same(extractPatientIds('/fhir;v=1/Patient/p-0002'), ['p-0002'], 'a base segment with path parameters');
  t.same(extractPatientIds('/fhir/Patient;v=1/p-0003'), ['p-0003'], 'a resource type with path parameters');
  t.same(extractPatientIds('/Fhir/Observation?patient=p-0004'), ['p-0004'], 'parameters under a base in any case');
  t.same(extractPatientIds('/fhir/Observation?patient[]=p-0005&subject[0]=p-0006'), ['p-0005', 'p-0006'], 'bracketed parameter names');
  t.same(extractPatientIds('/fhir/Observation?x=1;patient=p-0007'), ['p-0007'], 'a parameter after a semicolon');
  t.same(extractPatientIds('/fhir/Patient/_history?_id=p-0008'), ['p-0008'], '_id on the type history');
  t.same(extractPatientIds('/fhir/Patient/$match?_id=p-0009'), ['p-0009'], '_id on a type operation');
  t.same(extractPatientIds('/fhir/Patient?_ID=p-0011&_id[]=p-0012&_id:exact=p-0013&_id%5B%5D=p-0014'), ['p-0011', 'p-0012', 'p-0013', 'p-0014'], '_id in other spellings');
  t.same(extractPatientIds('/fhir/Observation?patient[0][ref]=p-0015&patient[=p-0016'), ['p-0015', 'p-0016'], 'a name counts up to its first bracket');
  t.same(extractPatientIds('/fhir/Observation?patient[]:Group=p-0017&+patient=p-0018&patient%00x=p-0019'), ['p-0017', 'p-0018', 'p-0019'], 'brackets before a modifier, a leading space, a NUL byte');
  t.same(extractPatientIds('/fhir/Patient?_id%00=p-0020'), ['p-0020'], '_id cut at a NUL byte');
  t.throws(() => extractPatientIds('/fhir/Patient/p-0010;v=1'), { code: 'WG_SCORER_INVALID_INPUT' }, 'an id with path parameters is not a valid id');
});

t.test('patient references in other forms', async (t) => {
  t.same(extractPatientIds('/fhir/Observation?patient=https://ehr.example/fhir/Patient/p-0021'), ['p-0021'], 'an absolute reference');
  t.same(extractPatientIds('/fhir/Observation?patient=https%3A%2F%2Fehr.example%2Ffhir%2FPatient%2Fp-0022'), ['p-0022'], 'an escaped absolute reference');
  t.same(extractPatientIds('/fhir/Observation?subject=Patient/p-0023/_history/2'), ['p-0023'], 'a versioned reference');
  t.same(extractPatientIds('/fhir/Observation?patient=p-0024,http://other.example/Patient/p-0025'), ['p-0024', 'p-0025'], 'a bare id and an absolute reference');
  t.throws(() => extractPatientIds('/fhir/Observation?subject=Group/g-1'), { code: 'WG_SCORER_INVALID_INPUT' }, 'a reference to another type is not a patient id');
  t.throws(() => extractPatientIds('/fhir/Observation?patient=https://ehr.example/fhir/Patient/p%2526'), { code: 'WG_SCORER_INVALID_INPUT' }, 'an invalid id in an absolute reference');
});

t.test('patient ids in other search forms', async (t) => {
  t.same(extractPatientIds('/fhir/Coverage?beneficiary=p-0031'), ['p-0031'], 'Coverage beneficiary as a bare id');
  t.same(extractPatientIds('/fhir/Coverage/_search?beneficiary=Patient/p-0032'), ['p-0032'], 'Coverage beneficiary as a reference');
  t.same(extractPatientIds('/fhir/Coverage?beneficiary._id=p-0033'), ['p-0033'], 'Coverage beneficiary chained to _id');
  t.same(extractPatientIds('/fhir/Observation?beneficiary=b-1'), [], 'beneficiary on another type');
  t.throws(() => extractPatientIds('/fhir/Coverage?beneficiary=x%20y'), { code: 'WG_SCORER_INVALID_INPUT' }, 'an invalid beneficiary id');
  t.same(extractPatientIds('/fhir/Observation?patient._id=p-0034'), ['p-0034'], 'patient chained to _id');
  t.same(extractPatientIds('/fhir/Observation?subject:Patient._id=p-0035'), ['p-0035'], 'subject:Patient chained to _id');
  t.same(extractPatientIds('/fhir/Observation?subject._id=p-0036,Patient/p-0037'), ['p-0036', 'p-0037'], 'subject chained to _id, repeated');
  t.throws(() => extractPatientIds('/fhir/Observation?patient._id=x%20y'), { code: 'WG_SCORER_INVALID_INPUT' }, 'an invalid chained id');
  t.same(extractPatientIds('/fhir/Observation?subject:Patient.name=smith&patient._id:not=p-0038'), [], 'other chains name no patient');
  t.same(extractPatientIds('/fhir/Patient?patient._id=p-0039'), [], 'the Patient type has no patient parameter to chain');
});

t.test('patient references in any parameter', async (t) => {
  t.same(extractPatientIds('/fhir/Observation?performer=Patient/p-0041'), ['p-0041'], 'performer');
  t.same(extractPatientIds('/fhir/Observation?focus=Patient/p-0042/_history/3'), ['p-0042'], 'focus, versioned');
  t.same(extractPatientIds('/fhir/Appointment?actor=https://ehr.example/fhir/Patient/p-0043'), ['p-0043'], 'actor, absolute');
  t.same(extractPatientIds('/fhir/Patient?link=Patient/p-0044'), ['p-0044'], 'link on the Patient type');
  t.same(extractPatientIds('/fhir/Patient/p-0045?link=Patient/p-0046'), ['p-0045', 'p-0046'], 'link on a Patient read');
  t.same(extractPatientIds('/fhir/Observation?patient:not=Patient/p-0047&subject:Group=Patient/p-0048'), ['p-0047', 'p-0048'], 'references in other patient modifiers');
  t.same(extractPatientIds('/fhir/Observation?performer=Practitioner/pr-1&code=1234'), [], 'references to other types');
  t.same(extractPatientIds('/fhir/Observation?_content=patient/%20rash'), [], 'an invalid id after Patient is no patient');
  t.same(extractPatientIds('/fhir/Observation?subject:Patient.name=Patient/p-0049'), [], 'a chain to patient data names no patient');
  t.same(extractPatientIds('/app/main.js?performer=Patient/p-0050'), [], 'only FHIR paths name patients');
});

t.test('paths without a fhir segment name no patient', async (t) => {
  // The audit trail's pseudonymizer records these ids as pseudonyms, but the scorer does not count them.
  t.same(extractPatientIds('/r4/Patient/p-0051'), []);
  t.same(extractPatientIds('/r4/Observation?patient=p-0052'), []);
});

t.test('bulk export is recognised', async (t) => {
  t.equal(isBulkExport('/fhir/Patient/1/$everything'), true);
  t.equal(isBulkExport('/fhir/Group/g1/$export?_type=Patient'), true);
  t.equal(isBulkExport('/fhir/Patient/1'), false);
  t.equal(isBulkExport('/fhir/Observation?code=$everything'), false);
});

t.test('patient extraction rejects hostile paths', async (t) => {
  const cases: [string, unknown][] = [
    ['oversized path', `/fhir/Patient/1?x=${'a'.repeat(9000)}`],
    ['id too long', `/fhir/Patient/${'a'.repeat(65)}`],
    ['id with a quote', "/fhir/Patient/1'or'1"],
    ['empty search value', '/fhir/Observation?patient='],
    ['truncated reference', '/fhir/Observation?patient=Patient/'],
    ['too many ids', `/fhir/Observation?patient=${Array.from({ length: 51 }, (_, i) => i).join(',')}`],
    ['wrongly typed path', 42],
  ];

  for (const [name, path] of cases) {
    t.throws(() => extractPatientIds(path as string), { code: 'WG_SCORER_INVALID_INPUT', status: 400 }, name);
  }
});

t.test('pseudonyms are keyed and stable', async (t) => {
  const first = new PatientPseudonymizer(Buffer.alloc(32, 1));
  const second = new PatientPseudonymizer(Buffer.alloc(32, 2));

  t.equal(first.pseudonymize('123'), first.pseudonymize('123'));
  t.not(first.pseudonymize('123'), second.pseudonymize('123'));
  t.match(first.pseudonymize('123'), /^[0-9a-f]{32}$/);
  t.throws(() => new PatientPseudonymizer(Buffer.alloc(16)), { code: 'WG_SCORER_INVALID_OPTION', detail: { option: 'patientKey' } });
});

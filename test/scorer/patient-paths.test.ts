import t from 'tap';

import { extractPatientIds } from '../../scorer/features/patient.ts';
import { compilePatientPaths, MAX_PATIENT_PATHS, NO_PATIENT_PATHS, patientPathProblem } from '../../scorer/features/patient-paths.ts';

const PAGES = compilePatientPaths(['/patients/{id}']);

t.test('template names the patient of a page', async (t) => {
  t.same(extractPatientIds('/patients/p-0001', PAGES), ['p-0001']);
  t.same(extractPatientIds('/patients/p-0001?tab=notes', PAGES), ['p-0001'], 'the query is not part of the match');
  t.same(extractPatientIds('/patients/p-0001/notes', PAGES), ['p-0001'], 'a longer path matches at a segment boundary');
  t.same(extractPatientIds('/patients/p-0001/', PAGES), ['p-0001'], 'a trailing slash is a longer path');
});

t.test('template leaves other paths alone', async (t) => {
  t.same(extractPatientIds('/patients', PAGES), [], 'no segment at {id}');
  t.same(extractPatientIds('/patients/', PAGES), [], 'an empty segment at {id} names no patient');
  t.same(extractPatientIds('/patientsx/p-0001', PAGES), [], 'a literal segment matches whole');
  t.same(extractPatientIds('/api/patients/p-0001', PAGES), [], 'the template is anchored at the start of the path');
  t.same(extractPatientIds('/', PAGES), []);
  t.same(extractPatientIds('/app/main.js', PAGES), []);
});

t.test('template literals ignore case and path parameters', async (t) => {
  t.same(extractPatientIds('/Patients/p-0001', PAGES), ['p-0001']);
  t.same(extractPatientIds('/PATIENTS/p-0001', PAGES), ['p-0001']);
  t.same(extractPatientIds('/patients;v=1/p-0001', PAGES), ['p-0001'], 'a ; parameter on a literal segment');
  t.same(extractPatientIds('/patients/P-0001', PAGES), ['P-0001'], 'the id keeps its case');
  t.same(extractPatientIds('/patientsx/p-0001', PAGES), [], 'a longer segment does not match');
  t.throws(() => extractPatientIds('/patients/p-0001;v=1', PAGES), { code: 'WG_SCORER_INVALID_INPUT' }, 'a ; inside the id is an invalid id');
});

t.test('template with a segment after {id}', async (t) => {
  const viewer = compilePatientPaths(['/pacs/viewer/{id}/series']);

  t.same(extractPatientIds('/pacs/viewer/p-0002/series', viewer), ['p-0002']);
  t.same(extractPatientIds('/pacs/viewer/p-0002/series/7/image/3', viewer), ['p-0002']);
  t.same(extractPatientIds('/pacs/viewer/p-0002', viewer), [], 'the path ends before the template');
  t.same(extractPatientIds('/pacs/viewer/p-0002/studies', viewer), [], 'a literal after {id} differs');
  t.throws(() => extractPatientIds('/pacs/viewer/bad%20id/series', viewer), { code: 'WG_SCORER_INVALID_INPUT' });
  t.same(extractPatientIds('/pacs/viewer/bad%20id/studies', viewer), [], 'an id is checked only when the template matches');
});

t.test('template id must be a FHIR id', async (t) => {
  const cases: [string, string][] = [
    ['encoded space', '/patients/x%20y'],
    ['underscore', '/patients/_search'],
    ['operation', '/patients/$everything'],
    ['too long', `/patients/${'a'.repeat(65)}`],
    ['quote', "/patients/1'or'1"],
  ];

  for (const [name, path] of cases) {
    t.throws(() => extractPatientIds(path, PAGES), { code: 'WG_SCORER_INVALID_INPUT', status: 400, detail: { field: 'path', source: 'path segment at {id} of /patients/{id}' } }, name);
  }
  t.throws(
    () => extractPatientIds('/patients/x%20y', PAGES),
    {
      message:
        "Invalid patient id in the path segment at {id} of /patients/{id}: expected 1 to 64 characters of A-Z, a-z, 0-9, '-' or '.', " +
        'received 5 characters; the first character not allowed is at position 2. Send the id of a Patient resource, such as /patients/123.',
    },
    'the message names the template, the first bad character and a valid example',
  );
  t.throws(() => extractPatientIds('/patients/_new', PAGES), { message: /received 4 characters; the first character not allowed is at position 1\./ }, 'a leading underscore is located');
  t.throws(() => extractPatientIds('/patients/M%C3%BCller', PAGES), { message: /received 11 characters; the first character not allowed is at position 2\./ }, 'no character of the id is quoted');
  t.throws(() => extractPatientIds(`/patients/${'a'.repeat(65)}`, PAGES), { message: /received 65 characters\./ }, 'a long id is reported by its length');
});

t.test('several templates and FHIR forms together', async (t) => {
  const templates = compilePatientPaths(['/patients/{id}', '/pacs/viewer/{id}/series', '/ward/{id}']);

  t.same(extractPatientIds('/pacs/viewer/p-0003/series', templates), ['p-0003']);
  t.same(extractPatientIds('/ward/p-0004', templates), ['p-0004']);
  t.same(extractPatientIds('/fhir/Patient/p-0005', templates), ['p-0005'], 'FHIR forms still apply');
  t.same(extractPatientIds('/fhir/Observation?patient=p-0006', templates), ['p-0006']);

  const overlapping = compilePatientPaths(['/patients/{id}', '/patients/{id}/chart/x', '/patients/a/{id}']);
  t.same(extractPatientIds('/patients/a/b', overlapping), ['a', 'b'], 'every matching template adds its id, in template order');
  t.same(extractPatientIds('/patients/p-0007/chart/x', overlapping), ['p-0007'], 'the same id is listed once');

  const fhirAlso = compilePatientPaths(['/fhir/Patient/{id}']);
  t.same(extractPatientIds('/fhir/Patient/p-0008', fhirAlso), ['p-0008'], 'a template that repeats a FHIR form adds no duplicate');
});

t.test('no templates by default', async (t) => {
  t.same(extractPatientIds('/patients/p-0001'), [], 'without templates the page names no patient');
  t.same(extractPatientIds('/patients/x%20y'), [], 'nor is its id checked');
  t.same(extractPatientIds('/patients/p-0001', NO_PATIENT_PATHS), []);
  t.same(compilePatientPaths([]), []);
});

t.test('patient path templates are validated', async (t) => {
  const cases: [string, string, string][] = [
    ['no {id}', '/patients', 'expected exactly one {id} segment, got 0 in "/patients"; write it like "/patients/{id}"'],
    ['two {id}', '/patients/{id}/{id}', 'expected exactly one {id} segment, got 2 in "/patients/{id}/{id}"; write it like "/patients/{id}"'],
    ['relative', 'patients/{id}', 'expected an absolute path starting with "/", got "patients/{id}"; write it like "/patients/{id}"'],
    ['query', '/patients/{id}?tab=notes', 'expected a path without a query, got "/patients/{id}?tab=notes"; remove "?" and what follows, because templates match the path only'],
    ['doubled slash', '/patients//{id}', 'expected no empty segments, got "/patients//{id}"; remove the doubled or trailing "/"'],
    ['trailing slash', '/patients/{id}/', 'expected no empty segments, got "/patients/{id}/"; remove the doubled or trailing "/"'],
    ['dot segment', '/patients/../{id}', 'expected no "." or ".." segments, got "/patients/../{id}"; normalized paths never contain them'],
    ['{id} first', '/{id}', 'expected a literal segment before {id}, got "/{id}"; a first segment {id} would make the first segment of every path a patient id'],
    ['{id} inside a segment', '/patients/p{id}', 'expected exactly one {id} segment, got 0 in "/patients/p{id}"; write it like "/patients/{id}"'],
    ['other placeholder', '/patients/{id}/{tab}', `expected literal segments of A-Z, a-z, 0-9 and -._~!$&'()*+,;=:@ and {id} as a whole segment, got "{tab}" in "/patients/{id}/{tab}"`],
    ['percent escape', '/my%20patients/{id}', `expected literal segments of A-Z, a-z, 0-9 and -._~!$&'()*+,;=:@ and {id} as a whole segment, got "my%20patients" in "/my%20patients/{id}"`],
    ['empty', '', 'expected an absolute path starting with "/", got ""; write it like "/patients/{id}"'],
  ];

  for (const [name, template, problem] of cases) {
    t.equal(patientPathProblem(template), problem, name);
    t.throws(() => compilePatientPaths(['/ok/{id}', template]), { code: 'WG_SCORER_INVALID_OPTION', message: `Invalid option patientPaths[1]: ${problem}.`, detail: { option: 'patientPaths[1]' } }, name);
  }
  t.equal(patientPathProblem(42), 'expected a path template string such as "/patients/{id}", got number');
  t.equal(patientPathProblem('/patients/{id}'), null);
  t.equal(patientPathProblem("/a-z_0.9~!$&'()*+,;=:@/{id}/x"), null, 'every character a normalized segment keeps');
});

t.test('patient path template count is limited', async (t) => {
  const templates = Array.from({ length: MAX_PATIENT_PATHS + 1 }, (_, index) => `/t${index}/{id}`);

  t.equal(compilePatientPaths(templates.slice(0, MAX_PATIENT_PATHS)).length, MAX_PATIENT_PATHS);
  t.throws(() => compilePatientPaths(templates), { code: 'WG_SCORER_INVALID_OPTION', message: 'Invalid option patientPaths: expected at most 32 templates, got 33.' });
  t.throws(() => compilePatientPaths('/patients/{id}' as never), { code: 'WG_SCORER_INVALID_OPTION', message: 'Invalid option patientPaths: expected a list of path templates, got string.' });
});

import { request } from 'node:http';

import t from 'tap';

import { startDemoApp } from '../../demo/app/server.ts';

function call(url: string, path: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

t.test('demo app data is deterministic', async (t) => {
  const first = await startDemoApp();
  const second = await startDemoApp();
  t.teardown(() => Promise.all([first.close(), second.close()]));

  t.equal(first.patients.length, 200);
  t.same(first.patients, second.patients);
  t.equal(first.patients[0]!.id, 'p-0001');
  t.equal((await call(first.url, '/fhir/Patient/p-0042')).body, (await call(second.url, '/fhir/Patient/p-0042')).body);
});

t.test('demo FHIR API', async (t) => {
  const app = await startDemoApp();
  t.teardown(() => app.close());

  const page = JSON.parse((await call(app.url, '/fhir/Patient?_count=10&_offset=10')).body);
  t.equal(page.resourceType, 'Bundle');
  t.equal(page.total, 200);
  t.equal(page.entry.length, 10);
  t.equal(page.entry[0].resource.id, 'p-0011');
  t.same(page.link, [{ relation: 'next', url: '/fhir/Patient?_count=10&_offset=20' }]);

  const family = app.patients[149]!.family;
  const byName = JSON.parse((await call(app.url, `/fhir/Patient?name=${encodeURIComponent(family)}`)).body);
  t.equal(byName.total, 1);
  t.equal(byName.entry[0].resource.id, 'p-0150');

  const patient = await call(app.url, '/fhir/Patient/p-0001');
  t.equal(patient.status, 200);
  t.equal(patient.type, 'application/fhir+json; charset=utf-8');
  t.equal(JSON.parse(patient.body).resourceType, 'Patient');

  const missing = await call(app.url, '/fhir/Patient/p-9999');
  t.equal(missing.status, 404);
  t.equal(JSON.parse(missing.body).resourceType, 'OperationOutcome');

  const observations = JSON.parse((await call(app.url, '/fhir/Observation?patient=Patient/p-0001')).body);
  t.ok(observations.total >= 2 && observations.total <= 5);
  t.equal(observations.entry[0].resource.subject.reference, 'Patient/p-0001');

  const everything = JSON.parse((await call(app.url, '/fhir/Patient/p-0001/$everything')).body);
  t.equal(everything.total, observations.total + 1);
  t.equal(everything.entry[0].resource.resourceType, 'Patient');

  const careTeams = JSON.parse((await call(app.url, '/fhir/CareTeam?participant=dr-001')).body);
  t.ok(careTeams.total > 0);
  t.ok(careTeams.entry.every((entry: { resource: { participant: Array<{ member: { reference: string } }> } }) =>
    entry.resource.participant.some((participant) => participant.member.reference === 'Practitioner/dr-001')));

  t.equal((await call(app.url, '/fhir/Observation')).status, 400);
  t.equal((await call(app.url, '/fhir/Patient?_count=500')).status, 400);
  t.equal((await call(app.url, '/fhir/Patient?_offset=-1')).status, 400);
  t.equal((await call(app.url, '/fhir/Patient/p-0001', { method: 'DELETE' })).status, 405);
});

t.test('demo FHIR census search', async (t) => {
  const app = await startDemoApp();
  t.teardown(() => app.close());
  type Encounter = { status: string; subject: { reference: string }; period: { start: string; end?: string } };
  const search = async (query: string) => {
    const first = await call(app.url, `/fhir/Encounter?${query}`);
    t.equal(first.status, 200, query);
    let bundle = JSON.parse(first.body);
    const encounters: Encounter[] = bundle.entry.map((entry: { resource: Encounter }) => entry.resource);
    while (bundle.link?.[0]?.relation === 'next') {
      bundle = JSON.parse((await call(app.url, bundle.link[0].url)).body);
      encounters.push(...bundle.entry.map((entry: { resource: Encounter }) => entry.resource));
    }
    return encounters;
  };

  const census = await search('status=in-progress&_elements=subject&_count=100');
  t.equal(census.length, 164, 'one encounter for each of 160 patients in hospital, and four with the demo physician');
  t.ok(census.every((encounter) => encounter.status === 'in-progress' && encounter.period.end === undefined));
  const inHospital = new Set(census.map((encounter) => encounter.subject.reference));
  t.equal(inHospital.size, 160);
  t.ok(inHospital.has('Patient/p-0001'));
  t.notOk(inHospital.has('Patient/p-0005'), 'a discharged patient is absent');
  t.notOk(inHospital.has('Patient/p-0025'), 'a discharged patient seen by the demo physician is absent');

  const finished = await search('status=finished');
  t.equal(finished.length, 41);
  const discharged = finished.find((encounter) => encounter.subject.reference === 'Patient/p-0005');
  t.same(discharged?.period, { start: '2025-01-10T09:00:00Z', end: '2025-01-14T16:00:00Z' });

  t.equal((await search('status=in-progress,finished')).length, 205, 'comma means either status');
  t.equal((await search('participant=Practitioner/demo-physician')).length, 5, 'the participant search still works');
  t.equal((await search('participant=Practitioner/demo-physician&status=in-progress')).length, 4, 'participant and status together');

  const neither = await call(app.url, '/fhir/Encounter');
  t.equal(neither.status, 400);
  t.match(JSON.parse(neither.body).issue[0].diagnostics, 'requires the participant or status parameter');
});

t.test('demo front end and notes', async (t) => {
  const app = await startDemoApp();
  t.teardown(() => app.close());
  const assertion = `e30.${Buffer.from(JSON.stringify({ sub: 'dr-003', name: 'Dr Mocka' })).toString('base64url')}.sig`;

  const home = await call(app.url, '/', { headers: { 'x-wardgate-assertion': assertion } });
  t.equal(home.status, 200);
  t.match(home.body, 'Signed in as Dr Mocka (dr-003)');
  t.match(home.body, 'href="/patients/p-0001"');

  const anonymous = await call(app.url, '/', { headers: { 'x-wardgate-assertion': 'not-a-jwt' } });
  t.match(anonymous.body, 'not signed in');

  const page = await call(app.url, '/patients/p-0001');
  t.match(page.body, '<form method="post" action="/notes">');

  const note = await call(app.url, '/notes', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'patient=p-0001&text=%3Cscript%3Ealert(1)%3C%2Fscript%3E',
  });
  t.equal(note.status, 201);
  t.match(note.body, '&#60;script&#62;alert(1)&#60;/script&#62;');
  t.notMatch(note.body, '<script>');

  const jsonNote = await call(app.url, '/notes', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-wardgate-assertion': assertion },
    body: JSON.stringify({ patient: 'p-0002', text: 'BP stable' }),
  });
  t.same(JSON.parse(jsonNote.body), { received: { patient: 'p-0002', text: 'BP stable' }, user: { sub: 'dr-003', name: 'Dr Mocka' } });

  const brokenJson = await call(app.url, '/notes', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"patient":' });
  t.equal(brokenJson.status, 400);

  const tooLarge = await call(app.url, '/notes', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x'.repeat(70_000) }).catch(() => ({ status: 413 }));
  t.equal(tooLarge.status, 413);
});

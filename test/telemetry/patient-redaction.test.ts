import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import t from 'tap';
import { PatientPseudonymizer } from '../../scorer/features/patient.ts';
import { createLogger } from '../../proxy/telemetry/logger.ts';
import { MAX_REDACTED_LENGTH, PatientPathRedactor } from '../../proxy/telemetry/patient-redaction.ts';

const key = randomBytes(32);
const redactor = new PatientPathRedactor(key);
const pseudonym = (id: string) => `~${new PatientPseudonymizer(key).pseudonymize(id)}`;

t.test('pseudonym matches the scorer pseudonym', async (t) => {
  t.equal(redactor.pseudonym('p-0001'), pseudonym('p-0001'));
  t.match(redactor.pseudonym('p-0001'), /^~[0-9a-f]{32}$/);
  t.not(redactor.pseudonym('p-0001'), new PatientPathRedactor(randomBytes(32)).pseudonym('p-0001'), 'another key gives another pseudonym');
});

const cases: Array<[string, string, { path: string; query: string }]> = [
  ['patient read', '/fhir/Patient/p-0001', { path: `/fhir/Patient/${pseudonym('p-0001')}`, query: '' }],
  ['patient operation', '/fhir/Patient/p-0001/$everything', { path: `/fhir/Patient/${pseudonym('p-0001')}/$everything`, query: '' }],
  ['patient search keeps the type', '/fhir/Patient', { path: '/fhir/Patient', query: '' }],
  ['patient parameter', '/fhir/Observation?patient=p-0001&code=1234', { path: '/fhir/Observation', query: `patient=${pseudonym('p-0001')}&code=1234` }],
  ['subject reference', '/fhir/Observation?subject=Patient/p-0002', { path: '/fhir/Observation', query: `subject=Patient/${pseudonym('p-0002')}` }],
  ['comma-separated ids', '/fhir/Observation?patient=p-1,p-2', { path: '/fhir/Observation', query: `patient=${pseudonym('p-1')},${pseudonym('p-2')}` }],
  ['modifier on parameter', '/fhir/Observation?patient:not=p-9', { path: '/fhir/Observation', query: `patient:not=${pseudonym('p-9')}` }],
  ['id search on Patient', '/fhir/Patient?_id=p-0108', { path: '/fhir/Patient', query: `_id=${pseudonym('p-0108')}` }],
  ['demo patient page', '/patients/p-0110', { path: `/patients/${pseudonym('p-0110')}`, query: '' }],
  ['reference in another parameter', '/fhir/Encounter?_has=Patient/p-3', { path: '/fhir/Encounter', query: `_has=Patient/${pseudonym('p-3')}` }],
  ['known id elsewhere in the path', '/fhir/Patient/p-4/_history/p-4', { path: `/fhir/Patient/${pseudonym('p-4')}/_history/${pseudonym('p-4')}`, query: '' }],
  ['patient path outside fhir', '/api/Patient/12345', { path: `/api/Patient/${pseudonym('12345')}`, query: '' }],
  ['non-patient path', '/static/app.js?v=3', { path: '/static/app.js', query: 'v=3' }],
];

for (const [name, target, expected] of cases) {
  t.test(`redacts ${name}`, async (t) => {
    t.same(redactor.redact(target), expected);
  });
}

t.test('invalid ids are redacted', async (t) => {
  const long = 'x'.repeat(80);
  const result = redactor.redact(`/fhir/Patient/${long}?patient=${'y'.repeat(70)}`);

  t.equal(result.path, '/fhir/Patient/~redacted');
  t.equal(result.query, 'patient=~redacted');
});

t.test('too many ids are all replaced', async (t) => {
  const ids = Array.from({ length: 60 }, (_, index) => `p-${index}`);
  const result = redactor.redact(`/fhir/Observation?patient=${ids.join(',')}`);

  for (const id of ids) t.notMatch(result.query, new RegExp(`(^|[=,])${id}(,|$)`), `${id} is replaced`);
});

t.test('percent-encoded id is replaced', async (t) => {
  const result = redactor.redact('/fhir/Patient/p%2D0001');

  t.equal(result.path, `/fhir/Patient/${pseudonym('p-0001')}`);
});

t.test('redacting twice changes nothing', async (t) => {
  const once = redactor.redactTarget('/fhir/Patient/p-0001?patient=p-0002');
  t.equal(redactor.redactTarget(once), once);
});

t.test('long targets are cut', async (t) => {
  const result = redactor.redact(`/static/${'a'.repeat(5000)}`);
  t.equal(result.path.length, MAX_REDACTED_LENGTH + 3);
});

t.test('log line of a rejected target holds no id', async (t) => {
  const line = redactor.redactTarget('/patients/p-0150%2F');
  t.equal(line, `/patients/${pseudonym('p-0150')}%2F`);
});

t.test('non-string target gives empty parts', async (t) => {
  t.same(redactor.redact(undefined as unknown as string), { path: '', query: '' });
});

t.test('short key is rejected', async (t) => {
  t.throws(() => new PatientPathRedactor(randomBytes(16)), { code: 'WG_SCORER_INVALID_OPTION' });
});

t.test('logger pseudonymizes target fields', async (t) => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  const logger = createLogger({ level: 'info', destination, redactTarget: redactor });

  logger.warn({ url: '/fhir/Patient/p-0001', target: '/fhir/Observation?patient=p-0002', path: '/fhir/Patient/p-0003/$everything', other: 'kept' }, 'upstream request failed');
  logger.child({ trace_id: 'abc' }).info({ url: '/fhir/Patient/p-0004' }, 'child line');

  const first = JSON.parse(lines[0]!) as Record<string, string>;
  t.equal(first.url, `/fhir/Patient/${pseudonym('p-0001')}`);
  t.equal(first.target, `/fhir/Observation?patient=${pseudonym('p-0002')}`);
  t.equal(first.path, `/fhir/Patient/${pseudonym('p-0003')}/$everything`);
  t.equal(first.other, 'kept');
  const second = JSON.parse(lines[1]!) as Record<string, string>;
  t.equal(second.url, `/fhir/Patient/${pseudonym('p-0004')}`);
  t.equal(second.trace_id, 'abc');
  for (const line of lines) t.notMatch(line, /p-000\d/, 'no clear patient id in the log');
});

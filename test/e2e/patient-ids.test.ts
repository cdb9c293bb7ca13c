import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { createLogger } from '../../proxy/telemetry/logger.ts';
import { PatientPathRedactor } from '../../proxy/telemetry/patient-redaction.ts';
import { compilePatientPaths } from '../../scorer/features/patient-paths.ts';
import { PatientPseudonymizer } from '../../scorer/features/patient.ts';
import { readLines, temporaryDir, trailFiles } from '../audit/helpers.ts';
import { Browser, rawRequest, signIn, startTestStack } from './support.ts';

/** Request targets that name patients p-01xx in the forms a client may use. */
const TARGETS = [
  '/fhir/Observation?patient=Patient%2Fp-0103',
  '/fhir/Observation?subject=Patient%2Fp-0113',
  '/fhir/Observation?patient=p%2D0131',
  '/fhir/Observation?patient=%70-0132',
  '/fhir/Patient?_id=p-0108',
  '/fhir/Observation?subject:Patient=p-0106',
  '/fhir/patient/p-0118',
  '/patients/p-0110',
  '/patients/p-0150%2F',
  '/pacs/viewer/p-0141/series',
];

/** The demo's page template plus one that no built-in rule recognises, as `scorer.patient_paths`. */
const PATIENT_PATHS = ['/patients/{id}', '/pacs/viewer/{id}/series'];

const CLEAR_ID = /p-01\d\d|p%2D01|%70-01/;

t.test('patient ids stay out of audit, spans and logs', async (t) => {
  const state = temporaryDir('patient-ids');
  t.teardown(state.remove);
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  // The stack's patient key is known only once it runs, so the log redactor is set then.
  let redactor: PatientPathRedactor | null = null;
  const logger = createLogger({ level: 'info', destination, redactTarget: { redactTarget: (target) => (redactor ? redactor.redactTarget(target) : '~no-redactor') } });
  const stack = await startTestStack({ stateDir: state.dir, logger, scorer: { patient_paths: PATIENT_PATHS } });
  redactor = new PatientPathRedactor(stack.config.patient_key, compilePatientPaths(PATIENT_PATHS));
  let closed = false;
  t.teardown(() => (closed ? undefined : stack.close()));

  const browser = new Browser(stack.certificates.ca.cert);
  await signIn(stack, browser, 'physician');
  const cookie = `__Host-wardgate_session=${browser.cookie(stack.url, '__Host-wardgate_session')}`;
  for (const target of TARGETS) await rawRequest(stack, target, { headers: { cookie, accept: 'application/fhir+json' } });

  const invalid = await rawRequest(stack, '/fhir/Patient/p-0061?subject=x%20y', { headers: { cookie, accept: 'application/json' } });
  t.equal(invalid.status, 400, 'an invalid patient id is a client error');
  const body = JSON.parse(invalid.body) as { error: string; message: string };
  t.equal(body.error, 'WG_HTTP_INVALID_PATIENT_ID');
  t.match(body.message, /search parameter subject/, 'the message names the parameter');
  t.match(body.message, /subject=Patient\/123/, 'the message gives the fix');

  const spans = stack.spans.getFinishedSpans();
  await stack.close();
  closed = true;

  for (const span of spans) {
    for (const [name, value] of Object.entries(span.attributes)) t.notMatch(String(value), CLEAR_ID, `span attribute ${name} holds no patient id`);
  }
  t.ok(spans.some((span) => String(span.attributes['url.query'] ?? '').startsWith('_id=~')), 'the _id search is in the span, pseudonymised');
  t.ok(lines.some((line) => line.includes('request rejected before routing')), 'the rejected target is logged');
  for (const line of lines) t.notMatch(line, CLEAR_ID, 'log line holds no patient id');

  const auditDir = path.join(state.dir, 'audit');
  const text = trailFiles(auditDir).map((name) => readFileSync(path.join(auditDir, name), 'utf8')).join('');
  t.notMatch(text, CLEAR_ID, 'the audit trail holds no patient id');

  const decisions = trailFiles(auditDir).flatMap((name) => readLines(path.join(auditDir, name)).map((line) => JSON.parse(line))).filter((record) => record.kind === 'decision');
  const pseudonymizer = new PatientPseudonymizer(stack.config.patient_key);
  for (const id of ['p-0103', 'p-0113', 'p-0131', 'p-0132', 'p-0108', 'p-0106', 'p-0118', 'p-0110', 'p-0141']) {
    t.ok(decisions.some((record) => Array.isArray(record.patients) && record.patients.includes(pseudonymizer.pseudonymize(id))), `the record of ${id} lists its pseudonym`);
  }

  const rejected = decisions.filter((record) => record.rule === 'request.invalid_patient_id');
  t.equal(rejected.length, 1, 'one record for the invalid request');
  t.match(rejected[0], { action: 'block', fail_mode: null, risk: 0, principal: { subject: String } });
  t.same(rejected[0].patients, [pseudonymizer.pseudonymize('p-0061')], 'the parsable id keeps its pseudonym');
  t.equal(rejected[0].path, `/fhir/Patient/~${pseudonymizer.pseudonymize('p-0061')}?subject=~redacted`);
  t.notOk(decisions.some((record) => String(record.rule).startsWith('fail_mode.')), 'no fail mode decided anything');
});

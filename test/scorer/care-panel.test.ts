import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { parsePanel, watchPanelFile } from '../../scorer/care/panel-source.ts';
import { PatientPseudonymizer } from '../../scorer/features/patient.ts';

const pseudonymizer = new PatientPseudonymizer(Buffer.alloc(32, 4));
const p = (id: string) => pseudonymizer.pseudonymize(id);

const PANEL = `
practitioners:
  demo-physician: [p-0001, p-0002]
  demo-nurse: [p-0002]
patients:
  p-0007: { vip: true }
  p-0013: { employee: true, vip: false }
`;

function writeAtomically(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

t.test('panel source answers care sets and flags by pseudonym', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-panel-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'panel.yaml');
  writeFileSync(file, PANEL);

  const source = await watchPanelFile(file, pseudonymizer, { pollMs: 0 });
  t.teardown(() => source.close());

  t.same(await source.careSet('demo-physician', 0), new Set([p('p-0001'), p('p-0002')]));
  t.same(await source.careSet('demo-nurse', 0), new Set([p('p-0002')]));
  t.equal(await source.careSet('demo-clerk', 0), null, 'an unlisted user is unknown');
  t.same(await source.patientFlags(p('p-0007')), { vip: true, employee: false });
  t.same(await source.patientFlags(p('p-0013')), { vip: false, employee: true });
  t.same(await source.patientFlags(p('p-0001')), { vip: false, employee: false });
  t.same(await source.patientFlags('p-0007'), { vip: false, employee: false }, 'clear ids are not keys');
});

t.test('panel stays tell who is in the hospital at a time', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-panel-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'panel.yaml');
  writeFileSync(
    file,
    `${PANEL}stays:\n  p-0001: [["2026-03-01T08:00:00Z", "2026-03-04T11:00:00Z"], ["2026-03-10T22:00:00Z", null]]\n  p-0002: [["2026-03-02T00:00:00Z", null]]\n`,
  );
  const source = await watchPanelFile(file, pseudonymizer, { pollMs: 0 });
  t.teardown(() => source.close());
  const time = (iso: string) => Date.parse(iso);

  t.equal(await source.inEncounter!(p('p-0001'), time('2026-03-01T08:00:00Z')), true, 'the start is inside the stay');
  t.equal(await source.inEncounter!(p('p-0001'), time('2026-03-04T11:00:00Z')), false, 'the end is outside');
  t.equal(await source.inEncounter!(p('p-0001'), time('2026-03-07T12:00:00Z')), false, 'between two stays');
  t.equal(await source.inEncounter!(p('p-0001'), time('2027-01-01T00:00:00Z')), true, 'an open stay');
  t.equal(await source.inEncounter!(p('p-0002'), time('2026-03-01T23:59:59Z')), false, 'before admission');
  t.equal(await source.inEncounter!(p('p-0007'), time('2026-03-05T00:00:00Z')), false, 'a patient without stays is not in the hospital');

  const withoutStays = parsePanel(PANEL, 'panel.yaml', pseudonymizer);
  t.equal(withoutStays.stays, null, 'no stays section: the census is unknown');
  const noCensus = join(dir, 'no-census.yaml');
  writeFileSync(noCensus, PANEL);
  const unknown = await watchPanelFile(noCensus, pseudonymizer, { pollMs: 0 });
  t.teardown(() => unknown.close());
  t.equal(await unknown.inEncounter!(p('p-0001'), time('2026-03-02T00:00:00Z')), null);
});

t.test('panel source reads JSON too', async (t) => {
  const panel = parsePanel(JSON.stringify({ practitioners: { u1: ['p-1'] } }), 'panel.json', pseudonymizer);
  t.same(panel.practitioners.get('u1'), new Set([p('p-1')]));
  t.equal(panel.flags.size, 0);
});

t.test('panel source reloads a changed file and keeps the last good one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-panel-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'panel.yaml');
  writeFileSync(file, PANEL);
  const reloads: string[] = [];
  const failures: string[] = [];
  const source = await watchPanelFile(file, pseudonymizer, { pollMs: 20, onReload: (name) => reloads.push(name), onReloadError: (error) => failures.push(error.code) });
  t.teardown(() => source.close());

  writeAtomically(file, 'practitioners:\n  demo-physician: [p-0003]\n');
  await t.resolves(waitFor(() => reloads.length === 1));
  t.same(await source.careSet('demo-physician', 0), new Set([p('p-0003')]));
  t.equal(source.lastReloadError(), null);

  writeFileSync(file, 'practitioners:\n  demo-physician: [p-00');
  await t.resolves(waitFor(() => failures.length >= 1));
  t.same(await source.careSet('demo-physician', 0), new Set([p('p-0003')]), 'a half-written file leaves the last panel in force');
  t.match(source.lastReloadError(), /^Invalid care panel .*panel\.yaml: /);
  t.equal(failures[0], 'WG_CARE_PANEL_INVALID');
});

const hostile: [string, string, RegExp][] = [
  ['a list', '- a\n- b\n', /expected a mapping with "practitioners" and "patients", found a list/],
  ['unknown key', 'practicioners: {}\n', /unknown top-level key "practicioners"/],
  ['ids as a string', 'practitioners: { u: p-1 }\n', /practitioners\.u: expected a list of patient ids, found "p-1"/],
  ['bad id', 'practitioners: { u: ["p/1"] }\n', /practitioners\.u\[0\]: expected a FHIR patient id .*found "p\/1"/],
  ['numeric id', 'practitioners: { u: [17] }\n', /practitioners\.u\[0\]: expected a FHIR patient id .*found 17/],
  ['oversized id', `practitioners: { u: ["${'a'.repeat(65)}"] }\n`, /expected a FHIR patient id/],
  ['duplicate user', 'practitioners:\n  u: [p-1]\n  u: [p-2]\n', /not valid YAML or JSON \(Map keys must be unique/],
  ['flag type', 'patients: { p-1: { vip: "yes" } }\n', /patients\.p-1\.vip: expected true or false, found "yes"/],
  ['unknown flag', 'patients: { p-1: { celebrity: true } }\n', /patients\.p-1: unknown flag "celebrity"/],
  ['truncated', 'practitioners: { u: [p-1', /not valid YAML or JSON/],
  ['stays as a list', 'stays: [p-1]\n', /stays: expected a mapping from patient id to a list of \[start, end\] pairs, found a list/],
  ['stay without an end', 'stays: { p-1: [["2026-03-01T08:00:00Z"]] }\n', /stays\.p-1\[0\]: expected \[start, end\] with ISO 8601 times/],
  ['stay time not ISO', 'stays: { p-1: [["yesterday", null]] }\n', /stays\.p-1\[0\]\[0\]: expected an ISO 8601 time such as "2026-03-01T08:00:00Z", found "yesterday"/],
  ['stay ending before it starts', 'stays: { p-1: [["2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z"]] }\n', /stays\.p-1\[0\]: the end "2026-03-01T00:00:00Z" is not after the start/],
  ['stay of a bad id', 'stays: { "p/1": [] }\n', /stays key "p\/1": expected a FHIR patient id/],
];

for (const [name, text, message] of hostile) {
  t.test(`panel rejects ${name}`, async (t) => {
    t.throws(() => parsePanel(text, 'panel.yaml', pseudonymizer), { code: 'WG_CARE_PANEL_INVALID', message });
  });
}

t.test('panel source fails at start without a good file', async (t) => {
  await t.rejects(watchPanelFile('/nonexistent/panel.yaml', pseudonymizer), { code: 'WG_CARE_PANEL_NOT_FOUND', message: /Cannot read the care panel file \/nonexistent\/panel\.yaml \(ENOENT\); check care\.panel_file\./ });
});

/** Polls for up to 30 s of wall time: timers run late on a loaded machine. */
async function waitFor(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  if (!condition()) throw new Error('condition not met within 30 s');
}

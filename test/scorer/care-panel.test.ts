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

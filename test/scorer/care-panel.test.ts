import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { MAX_PANEL_BYTES, parsePanel, watchPanelFile, type PanelCareSource } from '../../scorer/care/panel-source.ts';
import type { CareSourceError } from '../../scorer/care/errors.ts';
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

/** Nine levels of ten aliases over a list of two ids: 2 × 10^9 list items once expanded. */
const ALIAS_BOMB = ['l0: &l0 [p-1, p-2]', ...Array.from({ length: 9 }, (_, level) => `l${level + 1}: &l${level + 1} [${Array(10).fill(`*l${level}`).join(', ')}]`)].join('\n');

const hostile: [string, string, RegExp][] = [
  ['a list', '- a\n- b\n', /expected a mapping with "practitioners" and "patients", found a list/],
  ['unknown key', 'practicioners: {}\n', /unknown top-level key "practicioners"/],
  ['ids as a string', 'practitioners: { u: p-1 }\n', /practitioners\.u: expected a list of patient ids, found a string\.$/],
  ['bad id', 'practitioners: { u: ["p/1"] }\n', /practitioners\.u\[0\]: expected a FHIR patient id .*found a string of 3 characters that is not one\.$/],
  ['numeric id', 'practitioners: { u: [17] }\n', /practitioners\.u\[0\]: expected a FHIR patient id .*found 17/],
  ['oversized id', `practitioners: { u: ["${'a'.repeat(65)}"] }\n`, /expected a FHIR patient id/],
  ['duplicate user', 'practitioners:\n  u: [p-1]\n  u: [p-2]\n', /not valid YAML or JSON \(Map keys must be unique/],
  ['flag type', 'patients: { p-1: { vip: "yes" } }\n', /patients entry 1, vip: expected true or false, found "yes"/],
  ['unknown flag', 'patients: { p-1: { celebrity: true } }\n', /patients entry 1: unknown flag "celebrity"/],
  ['truncated', 'practitioners: { u: [p-1', /not valid YAML or JSON/],
  ['stays as a list', 'stays: [p-1]\n', /stays: expected a mapping from patient id to a list of \[start, end\] pairs, found a list/],
  ['stay without an end', 'stays: { p-1: [["2026-03-01T08:00:00Z"]] }\n', /stays entry 1, stay 1: expected \[start, end\] with RFC 3339 times/],
  ['stay time not RFC 3339', 'stays: { p-1: [["yesterday", null]] }\n', /stays entry 1, stay 1, start: expected an RFC 3339 time with a zone \(Z or ±hh:mm\) such as "2026-03-01T08:00:00Z", found "yesterday"/],
  ['stay ending before it starts', 'stays: { p-1: [["2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z"]] }\n', /stays entry 1, stay 1: the end "2026-03-01T00:00:00Z" is not after the start/],
  ['stay of a bad id', 'stays: { "p/1": [] }\n', /stays entry 1, its key: expected a FHIR patient id .*found a string of 3 characters that is not one\.$/],
  ['empty file', '', /^Invalid care panel panel\.yaml: the file is empty; write the new panel to a temporary file in the same folder and rename it over this one/],
  ['file of comments only', '# panel for ward 3\n', /the file is empty; write the new panel to a temporary file/],
  ['null document', '~\n', /expected a mapping with "practitioners" and "patients", found null/],
  ['alias bomb', ALIAS_BOMB, /cannot convert the YAML to values \(Excessive alias count indicates a resource exhaustion attack\); write the lists out instead of using YAML anchors and aliases/],
  ['alias without anchor', 'practitioners: { u: *ward }\n', /cannot convert the YAML to values \(Unresolved alias .*ward\)/],
  ['!!omap section', 'practitioners: !!omap [ { u: [p-1] } ]\n', /practitioners: expected a mapping from user to a list of patient ids, found an !!omap \(write a plain mapping without the tag\)/],
  ['!!set of ids', 'practitioners: { u: !!set { p-1: null } }\n', /practitioners\.u: expected a list of patient ids, found a !!set \(write a list without the tag\)/],
  ['!!omap flags', 'patients: { p-1: !!omap [ { vip: true } ] }\n', /patients entry 1: expected \{ vip: true\|false, employee: true\|false \}, found an !!omap/],
  ['unknown tag', 'patients: { p-1: !flags { vip: true } }\n', /unsupported YAML \(Unresolved tag: !flags at line 1, column 18\); write plain mappings, lists and values without tags/],
  ['binary id', 'practitioners: { u: [!!binary cC0x] }\n', /practitioners\.u\[0\]: expected a FHIR patient id .*found binary data \(!!binary\)/],
  ['.nan flag', 'patients: { p-1: { vip: .nan } }\n', /patients entry 1, vip: expected true or false, found \.nan \(not a number\)/],
  ['.inf flag', 'patients: { p-1: { employee: .inf } }\n', /patients entry 1, employee: expected true or false, found \.inf \(infinity\)/],
  ['stay on 30 February', 'stays: { p-1: [["2026-02-30T00:00:00Z", null]] }\n', /stays entry 1, stay 1, start: "2026-02-30T00:00:00Z" is not a valid time \(February 2026 has 28 days\); expected an RFC 3339 time with a zone/],
  ['stay on 31 April', 'stays: { p-1: [["2026-03-01T00:00:00Z", "2026-04-31T00:00:00Z"]] }\n', /stays entry 1, stay 1, end: "2026-04-31T00:00:00Z" is not a valid time \(April 2026 has 30 days\)/],
  ['stay at hour 24', 'stays: { p-1: [["2026-03-01T24:00:00Z", null]] }\n', /"2026-03-01T24:00:00Z" is not a valid time \(hour 24 is not 00 to 23\)/],
  ['stay time without a zone', 'stays: { p-1: [["2026-03-01T08:00:00", null]] }\n', /stays entry 1, stay 1, start: expected an RFC 3339 time with a zone .*found "2026-03-01T08:00:00"/],
  ['stay time without seconds', 'stays: { p-1: [["2026-03-01T08:00Z", null]] }\n', /expected an RFC 3339 time with a zone .*found "2026-03-01T08:00Z"/],
  ['stay date without a time', 'stays: { p-1: [["2026-03-01", null]] }\n', /expected an RFC 3339 time with a zone .*found "2026-03-01"/],
  ['stay time in another format', 'stays: { p-1: [["2026-03-01 12:00 PM GMT+1400", null]] }\n', /expected an RFC 3339 time with a zone .*found "2026-03-01 12:00 PM GMT\+1400"/],
  ['stay zone offset out of range', 'stays: { p-1: [["2026-03-01T08:00:00+14:60", null]] }\n', /"2026-03-01T08:00:00\+14:60" is not a valid time \(the zone offset is not -23:59 to \+23:59\)/],
  ['stay time tagged !!timestamp', 'stays: { p-1: [[!!timestamp 2026-03-01T08:00:00Z, null]] }\n', /stays entry 1, stay 1, start: expected an RFC 3339 time with a zone .* in quotes, found a YAML timestamp; quote the time/],
];

for (const [name, text, message] of hostile) {
  t.test(`panel rejects ${name}`, async (t) => {
    t.throws(() => parsePanel(text, 'panel.yaml', pseudonymizer), { code: 'WG_CARE_PANEL_INVALID', message });
  });
}

t.test('panel stay times convert zones, fractions and leap days', async (t) => {
  const panel = parsePanel(
    'stays:\n  p-1: [["2024-02-29T09:00:00.1239+01:00", "2024-03-01t00:00:00z"], ["2026-03-01T08:00:00-05:30", null]]\n  p-2: [["0050-01-01T00:00:00Z", "0050-01-02T00:00:00Z"]]\n',
    'panel.yaml',
    pseudonymizer,
  );
  const old = new Date(0);
  old.setUTCFullYear(50, 0, 1);

  t.same(panel.stays?.get(p('p-1')), [[Date.UTC(2024, 1, 29, 8, 0, 0, 123), Date.UTC(2024, 2, 1)], [Date.UTC(2026, 2, 1, 13, 30), Number.POSITIVE_INFINITY]]);
  t.same(panel.stays?.get(p('p-2')), [[old.getTime(), old.getTime() + 86_400_000]], 'a year below 100 is not read as 19xx');
  t.throws(() => parsePanel('stays: { p-1: [["2025-02-29T00:00:00Z", null]] }\n', 'panel.yaml', pseudonymizer), {
    code: 'WG_CARE_PANEL_INVALID',
    message: /"2025-02-29T00:00:00Z" is not a valid time \(February 2025 has 28 days\)/,
  });
});

t.test('panel source rejects a FIFO without hanging', { skip: process.platform === 'win32' && 'no FIFOs' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-panel-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'panel.fifo');
  execFileSync('mkfifo', [fifo]);
  t.teardown(() => releaseReader(fifo));

  await t.rejects(withinHangBound(watchPanelFile(fifo, pseudonymizer, { pollMs: 0 })), {
    code: 'WG_CARE_PANEL_INVALID',
    message: `Invalid care panel ${fifo}: not a regular file (found a FIFO); point care.panel_file at a regular file and replace it by rename.`,
  });

  const file = join(dir, 'panel.yaml');
  writeFileSync(file, PANEL);
  const source = await watchPanelFile(file, pseudonymizer, { pollMs: 0 });
  rmSync(file);
  execFileSync('mkfifo', [file]);
  t.teardown(() => releaseReader(file));

  await t.resolves(withinHangBound(source.reload()), 'a reload of a FIFO returns');
  t.match(source.lastReloadError(), /^Invalid care panel .*panel\.yaml: not a regular file \(found a FIFO\)/);
  t.same(await source.careSet('demo-nurse', 0), new Set([p('p-0002')]), 'the last good panel stays in force');

  rmSync(file);
  writeAtomically(file, 'practitioners:\n  demo-nurse: [p-0009]\n');
  await t.resolves(withinHangBound(source.reload()), 'later reloads are not held up');
  t.same(await source.careSet('demo-nurse', 0), new Set([p('p-0009')]));
  await t.resolves(withinHangBound(source.close()));
});

t.test('panel source checks the type and size before reading', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-panel-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  await t.rejects(watchPanelFile(dir, pseudonymizer, { pollMs: 0 }), {
    code: 'WG_CARE_PANEL_INVALID',
    message: `Invalid care panel ${dir}: not a regular file (found a directory); point care.panel_file at a regular file and replace it by rename.`,
  });

  // A sparse file: 2 GiB long without using the disk space.
  const huge = join(dir, 'huge.yaml');
  writeFileSync(huge, PANEL);
  truncateSync(huge, 2 * 1024 ** 3);
  await t.rejects(watchPanelFile(huge, pseudonymizer, { pollMs: 0 }), {
    code: 'WG_CARE_PANEL_INVALID',
    message: `Invalid care panel ${huge}: the file is 2147483648 bytes, above the limit of ${MAX_PANEL_BYTES} bytes.`,
  });
});

t.test('panel reload rejects an empty file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-panel-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'panel.yaml');
  writeFileSync(file, PANEL);
  const failures: string[] = [];
  const source = await watchPanelFile(file, pseudonymizer, { pollMs: 0, onReloadError: (error) => failures.push(error.code) });
  t.teardown(() => source.close());

  writeFileSync(file, '');
  await source.reload();
  t.same(failures, ['WG_CARE_PANEL_INVALID']);
  t.match(source.lastReloadError(), /^Invalid care panel .*panel\.yaml: the file is empty; write the new panel to a temporary file in the same folder and rename it over this one/);
  t.same(await source.careSet('demo-physician', 0), new Set([p('p-0001'), p('p-0002')]), 'care sets stay known');
  t.same(await source.patientFlags(p('p-0007')), { vip: true, employee: false }, 'flags stay in force');
});

t.test('panel reload reports the sections it lost', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-panel-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'panel.yaml');
  const full = `${PANEL}stays:\n  p-0001: [["2026-03-01T08:00:00Z", null]]\n`;
  writeFileSync(file, full);
  const reloads: (readonly string[])[] = [];
  const source = await watchPanelFile(file, pseudonymizer, { pollMs: 0, onReload: (_file, lost) => reloads.push(lost) });
  t.teardown(() => source.close());

  // What a copy cut short after the first section leaves: still valid YAML.
  writeAtomically(file, 'practitioners:\n  demo-physician: [p-0001, p-0002]\n');
  await source.reload();
  writeAtomically(file, full);
  await source.reload();

  t.same(reloads, [['patients', 'stays'], []]);
});

t.test('panel reload maps an alias bomb to a coded error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-panel-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'panel.yaml');
  writeFileSync(file, PANEL);
  const failures: { code: string; message: string }[] = [];
  const source = await watchPanelFile(file, pseudonymizer, { pollMs: 0, onReloadError: (error) => failures.push({ code: error.code, message: error.message }) });
  t.teardown(() => source.close());

  writeAtomically(file, ALIAS_BOMB);
  await source.reload();

  t.equal(failures.length, 1);
  t.equal(failures[0]?.code, 'WG_CARE_PANEL_INVALID');
  t.match(failures[0]?.message, /^Invalid care panel .*panel\.yaml: cannot convert the YAML to values \(Excessive alias count/);
  t.equal(source.lastReloadError(), failures[0]?.message);
  t.same(await source.careSet('demo-nurse', 0), new Set([p('p-0002')]));
});

t.test('panel source fails at start without a good file', async (t) => {
  await t.rejects(watchPanelFile('/nonexistent/panel.yaml', pseudonymizer), { code: 'WG_CARE_PANEL_NOT_FOUND', message: /Cannot read the care panel file \/nonexistent\/panel\.yaml \(ENOENT\); check care\.panel_file\./ });
});

t.test('panel source rejects an invalid readTimeoutMs or pollMs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-panel-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'panel.yaml');
  writeFileSync(file, PANEL);

  for (const readTimeoutMs of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2_147_483_648]) {
    await t.rejects(watchPanelFile(file, pseudonymizer, { pollMs: 0, readTimeoutMs }), {
      code: 'WG_CARE_INVALID_OPTION',
      message: `Invalid option readTimeoutMs: expected a whole number of milliseconds from 1 to 2147483647, received ${String(readTimeoutMs)}.`,
    });
  }

  for (const pollMs of [-1, 0.5, Number.NaN, 2_147_483_648]) {
    await t.rejects(watchPanelFile(file, pseudonymizer, { pollMs }), {
      code: 'WG_CARE_INVALID_OPTION',
      message: `Invalid option pollMs: expected a whole number of milliseconds from 0 to 2147483647, received ${String(pollMs)}.`,
    });
  }

  const longest = await watchPanelFile(file, pseudonymizer, { pollMs: 0, readTimeoutMs: 2_147_483_647 });
  t.teardown(() => longest.close());
  t.same(await longest.careSet('demo-nurse', 0), new Set([p('p-0002')]), 'the setTimeout maximum is accepted');
});

const noFifos = process.platform === 'win32' && 'no FIFOs';

t.test('panel source times out a hung start-up read', { skip: noFifos }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-panel-'));
  const pool = threadPoolBlocker(dir);
  t.teardown(() => releaseAndRemove(pool, dir));
  const file = join(dir, 'panel.yaml');
  writeFileSync(file, PANEL);

  pool.block();
  await t.rejects(withinHangBound(watchPanelFile(file, pseudonymizer, { pollMs: 0, readTimeoutMs: 300 })), {
    code: 'WG_CARE_PANEL_NOT_FOUND',
    message: `Reading the care panel file ${file} timed out after 300 ms. Check the file system that holds care.panel_file.`,
  });
});

t.test('panel reload keeps the last panel when a read hangs', { skip: noFifos }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-panel-'));
  const pool = threadPoolBlocker(dir);
  let source: PanelCareSource | undefined;
  t.teardown(() => releaseAndRemove(pool, dir, source));
  const file = join(dir, 'panel.yaml');
  writeFileSync(file, PANEL);
  const failures: CareSourceError[] = [];
  source = await watchPanelFile(file, pseudonymizer, { pollMs: 0, readTimeoutMs: 300, onReloadError: (error) => failures.push(error) });

  writeAtomically(file, 'practitioners:\n  demo-nurse: [p-0009]\n');
  pool.block();
  await withinHangBound(source.reload());
  const timedOut = `Reading the care panel file ${file} timed out after 300 ms. Check the file system that holds care.panel_file.`;
  t.equal(source.lastReloadError(), timedOut);
  t.equal(failures.length, 1);
  t.equal(failures[0]?.code, 'WG_CARE_PANEL_NOT_FOUND');
  t.equal(failures[0]?.message, timedOut);
  t.same(await source.careSet('demo-nurse', 0), new Set([p('p-0002')]), 'the last good panel stays in force');

  await withinHangBound(source.reload());
  const pending = `Reading the care panel file ${file} failed: an earlier read has not returned after 300 ms. Check the file system that holds care.panel_file. The file is read again when that read returns.`;
  t.equal(source.lastReloadError(), pending, 'a reload during the hang reports the earlier read');
  t.equal(failures.length, 2);
  t.equal(failures[1]?.code, 'WG_CARE_PANEL_NOT_FOUND');
  t.same(await source.careSet('demo-nurse', 0), new Set([p('p-0002')]), 'the last good panel is still in force');
});

t.test('panel reload rereads the file after a hung read returns', { skip: noFifos }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-panel-'));
  const pool = threadPoolBlocker(dir);
  let source: PanelCareSource | undefined;
  t.teardown(() => releaseAndRemove(pool, dir, source));
  const file = join(dir, 'panel.yaml');
  writeFileSync(file, PANEL);
  const reloads: string[] = [];
  const failures: string[] = [];
  source = await watchPanelFile(file, pseudonymizer, {
    pollMs: 0,
    readTimeoutMs: 300,
    onReload: (name) => reloads.push(name),
    onReloadError: (error) => failures.push(error.message),
  });

  pool.block();
  await withinHangBound(source.reload());
  t.match(source.lastReloadError(), /timed out after 300 ms\./);
  writeAtomically(file, 'practitioners:\n  demo-nurse: [p-0009]\n');

  await pool.release();
  await t.resolves(waitFor(() => reloads.length === 1), 'the file is read again once the hung read returns');
  t.equal(source.lastReloadError(), null);
  t.same(await source.careSet('demo-nurse', 0), new Set([p('p-0009')]), 'the new panel is in force');
  t.equal(failures.length, 1, 'no reload failed after the hung read returned');
});

/** Rejects when `work` has not settled after 30 s, so a hang fails the test instead of stalling the run. */
async function withinHangBound<T>(work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('still pending after 30 s')), 30_000);
  });
  try {
    return await Promise.race([work, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** Opens the FIFO's write end and closes it, so that a reader blocked in open() gets end-of-file. */
function releaseReader(fifo: string): void {
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
  } catch {
    // ENXIO: no reader is waiting. ENOENT: the FIFO is gone.
  }
}

/**
 * Number of libuv worker threads, which run the fs promises API. libuv starts UV_THREADPOOL_SIZE
 * threads, with 4 when it is unset, 1 for 0 or an unparsable value, and at most 1024 (libuv 1.30
 * and later). libuv stores the count unsigned, so a negative value also gives 1024.
 */
const THREAD_POOL_SIZE = threadPoolSize();

function threadPoolSize(): number {
  const configured = process.env.UV_THREADPOOL_SIZE;
  if (configured === undefined) return 4;

  const size = Number.parseInt(configured, 10);
  if (Number.isNaN(size) || size === 0) return 1;
  if (size < 0) return 1024;

  return Math.min(size, 1024);
}

interface ThreadPoolBlocker {
  /** Starts one open() per worker thread on a FIFO without a writer, so fs calls made afterwards wait in the queue. */
  block(): void;
  /** Opens the write end of each FIFO, so the waiting open() calls return, and closes their handles. */
  release(): Promise<void>;
}

/**
 * Makes every fs promise started after block() wait, as a stuck network mount would, without
 * faking the file system. This works because libuv runs queued fs calls in order and each worker
 * thread is held by an open() that waits for a writer.
 *
 * NOTE: with io_uring in use (UV_USE_IO_URING=1 on some libuv versions), fs calls may bypass the
 * thread pool, so the panel reads would not hang and these tests would fail.
 */
function threadPoolBlocker(dir: string): ThreadPoolBlocker {
  const fifos: string[] = [];
  const readers: Promise<FileHandle>[] = [];
  let released: Promise<void> | undefined;

  const release = async () => {
    for (const fifo of fifos) await openWriter(fifo);
    for (const result of await Promise.allSettled(readers)) {
      if (result.status === 'fulfilled') await result.value.close();
    }
  };

  return {
    block: () => {
      for (let index = 0; index < THREAD_POOL_SIZE; index++) {
        const fifo = join(dir, `worker-${index}.fifo`);
        execFileSync('mkfifo', [fifo]);
        fifos.push(fifo);
        readers.push(open(fifo, 'r'));
      }
    },
    release: () => {
      released ??= release();
      return released;
    },
  };
}

/**
 * Opens the FIFO's write end and closes it, so that a reader waiting in open() returns. Retries
 * for up to 30 s while no reader is waiting yet (ENXIO), because a queued open() starts only
 * when a worker thread is free.
 */
async function openWriter(fifo: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENXIO' || Date.now() > deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Frees the worker threads, closes the source and removes the directory, also after a failed test.
 * The release comes first because close() waits for a reload whose read is held up.
 */
async function releaseAndRemove(pool: ThreadPoolBlocker, dir: string, source?: PanelCareSource): Promise<void> {
  try {
    await pool.release();
    await source?.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Polls for up to 30 s of wall time: timers run late on a loaded machine. */
async function waitFor(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  if (!condition()) throw new Error('condition not met within 30 s');
}

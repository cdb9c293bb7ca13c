import { readFile } from 'node:fs/promises';
import { fileVersion, watchFileVersion } from '../file-watch.ts';
import { parseDocument } from 'yaml';

import type { PatientPseudonymizer } from '../features/patient.ts';
import { CareSourceError } from './errors.ts';
import type { CareRelationshipSource, PatientFlags } from './source.ts';

/** FHIR resource id syntax: 1 to 64 characters of `A-Z a-z 0-9 - .` (FHIR R4, datatype `id`). */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

/** Maximum size of a panel file in bytes. */
export const MAX_PANEL_BYTES = 16 * 1024 * 1024;

const NO_FLAGS: PatientFlags = Object.freeze({ vip: false, employee: false });

/** A panel after loading: patient ids already replaced by pseudonyms. */
export interface CarePanel {
  readonly practitioners: ReadonlyMap<string, ReadonlySet<string>>;
  readonly flags: ReadonlyMap<string, PatientFlags>;
  /** Hospital stays by pseudonym, as [start, end) in milliseconds; null when the panel has no `stays` section. */
  readonly stays: ReadonlyMap<string, readonly Stay[]> | null;
}

/** One hospital stay, [start, end) in milliseconds since the epoch; `end` is Infinity while the patient is in. */
export type Stay = readonly [number, number];

/** Returns whether one of the stays covers `time`. */
export function inStay(stays: readonly Stay[] | undefined, time: number): boolean {
  return stays?.some(([start, end]) => start <= time && time < end) === true;
}

export interface PanelWatchOptions {
  /** Interval in milliseconds at which the file is checked for changes; 0 turns watching off. */
  readonly pollMs?: number;
  /** Called after a changed file was loaded. */
  readonly onReload?: (file: string) => void;
  /** Called when a changed file failed to load; the previous panel stays in force. */
  readonly onReloadError?: (error: CareSourceError) => void;
}

/** A care source backed by a panel file, reloaded when the file changes. */
export interface PanelCareSource extends CareRelationshipSource {
  /** The message of the last failed reload, or null when the last load succeeded. */
  lastReloadError(): string | null;
  /** Reloads the file now; used by the watcher and by tests. */
  reload(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Parses a panel in YAML or JSON:
 * `{ practitioners: { <user>: [<patientId>, ...] }, patients: { <patientId>: { vip, employee } },
 * stays: { <patientId>: [[<start>, <end or null>], ...] } }`, where the times of a stay are ISO 8601
 * and a null end means the patient is still in the hospital. All sections are optional; without
 * `stays` the census is unknown. Patient ids are pseudonymised here, so the panel in memory contains no
 * clear patient identifier.
 *
 * @throws {CareSourceError} `WG_CARE_PANEL_INVALID` naming the file, the entry and the fix.
 */
export function parsePanel(text: string, source: string, pseudonymizer: PatientPseudonymizer): CarePanel {
  const document = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (document.errors.length > 0) {
    throwInvalid(source, `not valid YAML or JSON (${document.errors[0]!.message.split('\n')[0]})`);
  }

  const root: unknown = document.toJS() ?? {};
  if (!isRecord(root)) throwInvalid(source, `expected a mapping with "practitioners" and "patients", found ${describe(root)}`);

  const unknownKeys = Object.keys(root).filter((key) => key !== 'practitioners' && key !== 'patients' && key !== 'stays');
  if (unknownKeys.length > 0) throwInvalid(source, `unknown top-level key ${JSON.stringify(unknownKeys[0])}; expected "practitioners", "patients" or "stays"`);

  const practitioners = new Map<string, ReadonlySet<string>>();
  const practitionerSection = root.practitioners ?? {};
  if (!isRecord(practitionerSection)) throwInvalid(source, `practitioners: expected a mapping from user to a list of patient ids, found ${describe(practitionerSection)}`);
  for (const [user, ids] of Object.entries(practitionerSection)) {
    if (!Array.isArray(ids)) throwInvalid(source, `practitioners.${user}: expected a list of patient ids, found ${describe(ids)}`);
    const pseudonyms = ids.map((id, index) => pseudonymizer.pseudonymize(assertPatientId(id, source, `practitioners.${user}[${index}]`)));
    practitioners.set(user, Object.freeze(new Set(pseudonyms)));
  }

  const flags = new Map<string, PatientFlags>();
  const patientSection = root.patients ?? {};
  if (!isRecord(patientSection)) throwInvalid(source, `patients: expected a mapping from patient id to { vip, employee }, found ${describe(patientSection)}`);
  for (const [id, entry] of Object.entries(patientSection)) {
    assertPatientId(id, source, `patients key ${JSON.stringify(id)}`);
    flags.set(pseudonymizer.pseudonymize(id), readFlags(entry, source, `patients.${id}`));
  }

  let stays: Map<string, readonly Stay[]> | null = null;
  if (root.stays !== undefined) {
    if (!isRecord(root.stays)) throwInvalid(source, `stays: expected a mapping from patient id to a list of [start, end] pairs, found ${describe(root.stays)}`);
    stays = new Map();
    for (const [id, list] of Object.entries(root.stays)) {
      assertPatientId(id, source, `stays key ${JSON.stringify(id)}`);
      if (!Array.isArray(list)) throwInvalid(source, `stays.${id}: expected a list of [start, end] pairs, found ${describe(list)}`);
      stays.set(pseudonymizer.pseudonymize(id), Object.freeze(list.map((pair, index) => readStay(pair, source, `stays.${id}[${index}]`))));
    }
  }

  return Object.freeze({ practitioners, flags, stays });
}

/**
 * Loads a panel file and, unless `pollMs` is 0, reloads it when it changes. A file that fails
 * to reload leaves the previous panel in force; `lastReloadError()` and `onReloadError` report it.
 *
 * `careSet` ignores the time argument: a panel lists the current care relationships only.
 * A user the panel does not list gets null (relationship unknown), not an empty set.
 *
 * @throws {CareSourceError} `WG_CARE_PANEL_NOT_FOUND` or `WG_CARE_PANEL_INVALID` at start,
 *   when there is no good panel to keep.
 */
export async function watchPanelFile(file: string, pseudonymizer: PatientPseudonymizer, options: PanelWatchOptions = {}): Promise<PanelCareSource> {
  const pollMs = options.pollMs ?? 1000;
  if (!Number.isInteger(pollMs) || pollMs < 0) {
    throw new CareSourceError('WG_CARE_INVALID_OPTION', `Invalid option pollMs: expected a whole number of milliseconds, 0 or more, received ${String(pollMs)}.`);
  }

  // The file's identity is taken before it is read, so a write during start-up is seen as a
  // change (fs.watchFile takes its own first reading later and would miss it).
  const seen = await fileVersion(file);
  let panel = await loadPanelFile(file, pseudonymizer);
  let lastError: string | null = null;
  let reloading = Promise.resolve();

  const reload = async () => {
    try {
      panel = await loadPanelFile(file, pseudonymizer);
      lastError = null;
      options.onReload?.(file);
    } catch (error) {
      const failure = error instanceof CareSourceError ? error : new CareSourceError('WG_CARE_PANEL_INVALID', String(error), { cause: error });
      lastError = failure.message;
      options.onReloadError?.(failure);
    }
  };
  const onChange = () => {
    reloading = reloading.then(reload);
  };
  const stopWatching = pollMs > 0 ? watchFileVersion(file, pollMs, seen, onChange) : () => {};

  return {
    careSet: async (user) => panel.practitioners.get(user) ?? null,
    patientFlags: async (pseudonym) => panel.flags.get(pseudonym) ?? NO_FLAGS,
    inEncounter: async (pseudonym, time) => (panel.stays === null ? null : inStay(panel.stays.get(pseudonym), time)),
    lastReloadError: () => lastError,
    reload: async () => {
      onChange();
      await reloading;
    },
    close: async () => {
      stopWatching();
      await reloading;
    },
  };
}

async function loadPanelFile(file: string, pseudonymizer: PatientPseudonymizer): Promise<CarePanel> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new CareSourceError('WG_CARE_PANEL_NOT_FOUND', `Cannot read the care panel file ${file} (${reason}); check care.panel_file.`, { cause: error });
  }

  if (bytes.length > MAX_PANEL_BYTES) throwInvalid(file, `file is ${bytes.length} bytes, above the limit of ${MAX_PANEL_BYTES}`);

  return parsePanel(bytes.toString('utf8'), file, pseudonymizer);
}

function readFlags(entry: unknown, source: string, where: string): PatientFlags {
  if (!isRecord(entry)) throwInvalid(source, `${where}: expected { vip: true|false, employee: true|false }, found ${describe(entry)}`);

  for (const key of Object.keys(entry)) {
    if (key !== 'vip' && key !== 'employee') throwInvalid(source, `${where}: unknown flag ${JSON.stringify(key)}; expected "vip" or "employee"`);
  }
  const vip = entry.vip ?? false;
  const employee = entry.employee ?? false;
  if (typeof vip !== 'boolean') throwInvalid(source, `${where}.vip: expected true or false, found ${describe(vip)}`);
  if (typeof employee !== 'boolean') throwInvalid(source, `${where}.employee: expected true or false, found ${describe(employee)}`);

  return Object.freeze({ vip, employee });
}

function readStay(pair: unknown, source: string, where: string): Stay {
  if (!Array.isArray(pair) || pair.length !== 2) throwInvalid(source, `${where}: expected [start, end] with ISO 8601 times and null for an open stay, found ${describe(pair)}`);
  const start = readTime(pair[0], source, `${where}[0]`);
  const end = pair[1] === null ? Number.POSITIVE_INFINITY : readTime(pair[1], source, `${where}[1]`);
  if (end <= start) throwInvalid(source, `${where}: the end ${JSON.stringify(pair[1])} is not after the start ${JSON.stringify(pair[0])}`);

  return Object.freeze([start, end] as const);
}

function readTime(value: unknown, source: string, where: string): number {
  // YAML reads an unquoted timestamp as a Date.
  const time = value instanceof Date ? value.getTime() : typeof value === 'string' && /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(time)) throwInvalid(source, `${where}: expected an ISO 8601 time such as "2026-03-01T08:00:00Z", found ${describe(value)}`);

  return time;
}

function assertPatientId(id: unknown, source: string, where: string): string {
  if (typeof id !== 'string' || !FHIR_ID.test(id)) {
    throwInvalid(source, `${where}: expected a FHIR patient id (1 to 64 characters of A-Z, a-z, 0-9, '-' or '.'), found ${describe(id)}`);
  }

  return id;
}

function throwInvalid(source: string, detail: string): never {
  throw new CareSourceError('WG_CARE_PANEL_INVALID', `Invalid care panel ${source}: ${detail}.`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  const text = JSON.stringify(value) ?? String(value);

  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}


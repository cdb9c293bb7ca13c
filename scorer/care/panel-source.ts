import type { FileHandle } from 'node:fs/promises';
import { parseDocument } from 'yaml';

import { fileVersion, watchFileVersion } from '../file-watch.ts';
import { NotRegularFileError, openRegularFile } from '../regular-file.ts';
import type { PatientPseudonymizer } from '../features/patient.ts';
import { CareSourceError } from './errors.ts';
import type { CareRelationshipSource, PatientFlags } from './source.ts';
import { dateTimeRangeProblem } from '../date-time.ts';

/** FHIR resource id syntax: 1 to 64 characters of `A-Z a-z 0-9 - .` (FHIR R4, datatype `id`). */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

/** Maximum size of a panel file in bytes. */
export const MAX_PANEL_BYTES = 16 * 1024 * 1024;

/**
 * Default time in milliseconds after which a read of the panel file is abandoned. A read that never
 * returns, such as one on a stuck network mount, would otherwise hold up every later reload and close().
 */
export const PANEL_READ_TIMEOUT_MS = 10_000;

/** Maximum delay of setTimeout in milliseconds. Node.js runs a timer with a larger delay after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * RFC 3339 section 5.6 `date-time` with seconds and a zone (`Z` or `±hh:mm`). The section's
 * NOTE allows a lower-case `t` and `z`. Ranges and the calendar are checked separately.
 */
const RFC3339_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;


const TIMED_OUT = Symbol('timed out');

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
  /** Name of the setting that gave the file, for error messages; default `care.panel_file`. */
  readonly setting?: string;
  /**
   * Time in milliseconds after which a read of the file counts as failed, from 1 to 2147483647
   * (the setTimeout maximum). Defaults to `PANEL_READ_TIMEOUT_MS`.
   */
  readonly readTimeoutMs?: number;
  /**
   * Called after a changed file was loaded, with the sections (`practitioners`, `patients`,
   * `stays`) that had entries before and have none now. The list is usually empty. A non-empty
   * list can mean that a file was cut short yet still parsed.
   */
  readonly onReload?: (file: string, lostSections: readonly string[]) => void;
  /** Called when a changed file failed to load; the previous panel stays in force. */
  readonly onReloadError?: (error: CareSourceError) => void;
}

/** A care source backed by a panel file, reloaded when the file changes. */
export interface PanelCareSource extends CareRelationshipSource {
  /** The message of the last failed reload, or null when the last load succeeded. */
  lastReloadError(): string | null;
  /** Reloads the file now; used by the watcher and by tests. */
  reload(): Promise<void>;
  /** Stops watching and waits for a reload in progress, which gives up after `readTimeoutMs`. */
  close(): Promise<void>;
}

/**
 * Parses a panel in YAML or JSON:
 * `{ practitioners: { <user>: [<patientId>, ...] }, patients: { <patientId>: { vip, employee } },
 * stays: { <patientId>: [[<start>, <end or null>], ...] } }`, where the times of a stay are
 * RFC 3339 strings with a zone and a null end means the patient is still in the hospital. All
 * sections are optional; without `stays` the census is unknown. An empty document, unknown
 * YAML tags, `!!omap`, `!!set`, `!!binary` and YAML timestamps are rejected. Patient ids
 * are pseudonymised here, so the panel in memory contains no clear patient identifier.
 *
 * @throws {CareSourceError} `WG_CARE_PANEL_INVALID` naming the file, the entry and the fix.
 */
export function parsePanel(text: string, source: string, pseudonymizer: PatientPseudonymizer): CarePanel {
  const root = readDocument(text, source);

  const unknownKeys = Object.keys(root).filter((key) => key !== 'practitioners' && key !== 'patients' && key !== 'stays');
  if (unknownKeys.length > 0) throwInvalid(source, `unknown top-level key ${JSON.stringify(unknownKeys[0])}; expected "practitioners", "patients" or "stays"`);

  const practitioners = new Map<string, ReadonlySet<string>>();
  const practitionerSection = root.practitioners ?? {};
  if (!isRecord(practitionerSection)) throwInvalid(source, `practitioners: expected a mapping from user to a list of patient ids, found ${describe(practitionerSection)}`);
  for (const [user, ids] of Object.entries(practitionerSection)) {
    if (!Array.isArray(ids)) throwInvalid(source, `practitioners.${user}: expected a list of patient ids, found ${typeof ids === 'string' ? 'a string' : describe(ids)}`);
    const pseudonyms = ids.map((id, index) => pseudonymizer.pseudonymize(assertPatientId(id, source, `practitioners.${user}[${index}]`)));
    practitioners.set(user, Object.freeze(new Set(pseudonyms)));
  }

  const flags = new Map<string, PatientFlags>();
  const patientSection = root.patients ?? {};
  if (!isRecord(patientSection)) throwInvalid(source, `patients: expected a mapping from patient id to { vip, employee }, found ${describe(patientSection)}`);
  // Messages name an entry by its position, never by its patient id, because they reach logs and the health endpoint.
  for (const [position, [id, entry]] of Object.entries(patientSection).entries()) {
    const where = `patients entry ${position + 1}`;
    assertPatientId(id, source, `${where}, its key`);
    flags.set(pseudonymizer.pseudonymize(id), readFlags(entry, source, where));
  }

  let stays: Map<string, readonly Stay[]> | null = null;
  if (root.stays !== undefined) {
    if (!isRecord(root.stays)) throwInvalid(source, `stays: expected a mapping from patient id to a list of [start, end] pairs, found ${describe(root.stays)}`);
    stays = new Map();
    for (const [position, [id, list]] of Object.entries(root.stays).entries()) {
      const where = `stays entry ${position + 1}`;
      assertPatientId(id, source, `${where}, its key`);
      if (!Array.isArray(list)) throwInvalid(source, `${where}: expected a list of [start, end] pairs, found ${describe(list)}`);
      stays.set(pseudonymizer.pseudonymize(id), Object.freeze(list.map((pair, index) => readStay(pair, source, `${where}, stay ${index + 1}`))));
    }
  }

  return Object.freeze({ practitioners, flags, stays });
}

/**
 * Loads a panel file and, unless `pollMs` is 0, reloads it when it changes. A file that fails
 * to reload leaves the previous panel in force; `lastReloadError()` and `onReloadError` report it.
 * A read that has not returned after `readTimeoutMs` (default `PANEL_READ_TIMEOUT_MS`) counts as
 * failed. Until it returns, later reloads fail at once, and when it returns the file is read again.
 *
 * `careSet` ignores the time argument: a panel lists the current care relationships only.
 * A user the panel does not list gets null (relationship unknown), not an empty set.
 *
 * @throws {CareSourceError} `WG_CARE_INVALID_OPTION` for an invalid `pollMs` or `readTimeoutMs`.
 *   At start, when there is no good panel to keep, `WG_CARE_PANEL_NOT_FOUND` (also when the first
 *   read times out) or `WG_CARE_PANEL_INVALID`.
 */
export async function watchPanelFile(file: string, pseudonymizer: PatientPseudonymizer, options: PanelWatchOptions = {}): Promise<PanelCareSource> {
  const pollMs = options.pollMs ?? 1000;
  if (!Number.isInteger(pollMs) || pollMs < 0 || pollMs > MAX_TIMER_MS) {
    throw new CareSourceError('WG_CARE_INVALID_OPTION', `Invalid option pollMs: expected a whole number of milliseconds from 0 to ${MAX_TIMER_MS}, received ${String(pollMs)}.`);
  }
  const readTimeoutMs = options.readTimeoutMs ?? PANEL_READ_TIMEOUT_MS;
  const setting = options.setting ?? 'care.panel_file';
  if (!Number.isInteger(readTimeoutMs) || readTimeoutMs < 1 || readTimeoutMs > MAX_TIMER_MS) {
    throw new CareSourceError('WG_CARE_INVALID_OPTION', `Invalid option readTimeoutMs: expected a whole number of milliseconds from 1 to ${MAX_TIMER_MS}, received ${String(readTimeoutMs)}.`);
  }

  // The file's identity is taken before it is read, so a write during start-up is seen as a
  // change (fs.watchFile takes its own first reading later and would miss it). The stat() behind
  // it is under the same deadline, because it hangs on a stuck file system just as the read does.
  const first = await settleWithin(
    fileVersion(file).then(async (version) => ({ seen: version, panel: await loadPanelFile(file, pseudonymizer, setting) })),
    readTimeoutMs,
  );
  if (first === TIMED_OUT) throw readTimedOut(file, readTimeoutMs, setting);

  const { seen } = first;
  let panel = first.panel;
  let lastError: string | null = null;
  let reloading = Promise.resolve();
  let readPending = false;
  let closed = false;

  const fail = (failure: CareSourceError) => {
    lastError = failure.message;
    options.onReloadError?.(failure);
  };
  const reload = async () => {
    if (closed) return;
    if (readPending) {
      fail(new CareSourceError('WG_CARE_PANEL_NOT_FOUND', `Reading the care panel file ${file} failed: an earlier read has not returned after ${readTimeoutMs} ms. Check the file system that holds ${setting}. The file is read again when that read returns.`));
      return;
    }

    const attempt = loadPanelFile(file, pseudonymizer, setting);
    try {
      const next = await settleWithin(attempt, readTimeoutMs);
      if (next === TIMED_OUT) {
        readPending = true;
        const retry = () => {
          readPending = false;
          onChange();
        };
        attempt.then(retry, retry);
        fail(readTimedOut(file, readTimeoutMs, setting));
        return;
      }

      const lost = lostSections(panel, next);
      panel = next;
      lastError = null;
      options.onReload?.(file, lost);
    } catch (error) {
      fail(error instanceof CareSourceError ? error : new CareSourceError('WG_CARE_PANEL_INVALID', `Cannot reload the care panel file ${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
    }
  };
  const onChange = () => {
    reloading = reloading.then(reload, reload);
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
      closed = true;
      stopWatching();
      await reloading;
    },
  };
}

/** Parses the text into plain values and returns the top-level mapping. Every YAML failure becomes `WG_CARE_PANEL_INVALID`. */
function readDocument(text: string, source: string): Record<string, unknown> {
  const document = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (document.errors.length > 0) throwInvalid(source, `not valid YAML or JSON (${firstLine(document.errors[0])})`);
  // yaml reports an unknown tag such as `!flags` as a warning and then reads the value as a string.
  if (document.warnings.length > 0) throwInvalid(source, `unsupported YAML (${firstLine(document.warnings[0])}); write plain mappings, lists and values without tags`);
  if (document.contents === null) {
    throwInvalid(source, 'the file is empty; write the new panel to a temporary file in the same folder and rename it over this one, so that a reload never reads a file that is still being written');
  }

  let root: unknown;
  try {
    root = document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    // yaml throws a ReferenceError for an alias without an anchor and for more than maxAliasCount alias expansions (an alias bomb).
    const fix = error instanceof ReferenceError ? '; write the lists out instead of using YAML anchors and aliases (& and *)' : '';
    throwInvalid(source, `cannot convert the YAML to values (${firstLine(error)})${fix}`);
  }
  if (!isRecord(root)) throwInvalid(source, `expected a mapping with "practitioners" and "patients", found ${describe(root)}`);

  return root;
}

/**
 * Reads and parses the panel file. The file must be a regular file of at most `MAX_PANEL_BYTES`:
 * reading a FIFO would wait for a writer forever, and the size is checked before any byte is read.
 */
async function loadPanelFile(file: string, pseudonymizer: PatientPseudonymizer, setting: string): Promise<CarePanel> {
  const { handle, info } = await openRegularFile(file).catch((error: unknown) => {
    if (error instanceof NotRegularFileError) throwInvalid(file, `not a regular file (found ${error.found}); point ${setting} at a regular file and replace it by rename`);
    return throwNotFound(file, error, setting);
  });
  let text: string;
  try {
    if (info.size > MAX_PANEL_BYTES) throwInvalid(file, `the file is ${info.size} bytes, above the limit of ${MAX_PANEL_BYTES} bytes`);
    text = await readAtMost(handle, file, setting);
  } finally {
    await handle.close();
  }

  return parsePanel(text, file, pseudonymizer);
}

async function readAtMost(handle: FileHandle, file: string, setting: string): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;

  // The size from stat() is checked first, but a file can grow after it, and some files (in /proc) report size 0.
  for (;;) {
    const chunk = Buffer.alloc(64 * 1024);
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, null).catch((error: unknown) => throwNotFound(file, error, setting));
    if (bytesRead === 0) break;
    total += bytesRead;
    if (total > MAX_PANEL_BYTES) throwInvalid(file, `the file is above the limit of ${MAX_PANEL_BYTES} bytes`);
    chunks.push(chunk.subarray(0, bytesRead));
  }

  return Buffer.concat(chunks, total).toString('utf8');
}

/** Resolves with the value of `work`, or with TIMED_OUT when it has not settled after `ms`. */
async function settleWithin<T>(work: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(resolve, ms, TIMED_OUT);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function readTimedOut(file: string, timeoutMs: number, setting: string): CareSourceError {
  return new CareSourceError('WG_CARE_PANEL_NOT_FOUND', `Reading the care panel file ${file} timed out after ${timeoutMs} ms. Check the file system that holds ${setting}.`);
}

/** Returns the sections that had entries in `previous` and have none in `next`. */
function lostSections(previous: CarePanel, next: CarePanel): string[] {
  const lost: string[] = [];
  if (previous.practitioners.size > 0 && next.practitioners.size === 0) lost.push('practitioners');
  if (previous.flags.size > 0 && next.flags.size === 0) lost.push('patients');
  if (previous.stays !== null && next.stays === null) lost.push('stays');

  return lost;
}

function readFlags(entry: unknown, source: string, where: string): PatientFlags {
  if (!isRecord(entry)) throwInvalid(source, `${where}: expected { vip: true|false, employee: true|false }, found ${describe(entry)}`);

  for (const key of Object.keys(entry)) {
    if (key !== 'vip' && key !== 'employee') throwInvalid(source, `${where}: unknown flag ${JSON.stringify(key)}; expected "vip" or "employee"`);
  }
  const vip = entry.vip ?? false;
  const employee = entry.employee ?? false;
  if (typeof vip !== 'boolean') throwInvalid(source, `${where}, vip: expected true or false, found ${describe(vip)}`);
  if (typeof employee !== 'boolean') throwInvalid(source, `${where}, employee: expected true or false, found ${describe(employee)}`);

  return Object.freeze({ vip, employee });
}

function readStay(pair: unknown, source: string, where: string): Stay {
  if (!Array.isArray(pair) || pair.length !== 2) throwInvalid(source, `${where}: expected [start, end] with RFC 3339 times and null for an open stay, found ${describe(pair)}`);
  const start = readTime(pair[0], source, `${where}, start`);
  const end = pair[1] === null ? Number.POSITIVE_INFINITY : readTime(pair[1], source, `${where}, end`);
  if (end <= start) throwInvalid(source, `${where}: the end ${JSON.stringify(pair[1])} is not after the start ${JSON.stringify(pair[0])}`);

  return Object.freeze([start, end] as const);
}

/**
 * Converts an RFC 3339 time with a zone to milliseconds since the epoch, truncating digits
 * after the milliseconds. Only strings are read. A YAML timestamp (a Date from a `!!timestamp`
 * tag, or from an unquoted time under `%YAML 1.1`) is rejected, because YAML reads one without
 * a zone as UTC and accepts days such as 30 February.
 */
function readTime(value: unknown, source: string, where: string): number {
  const expected = 'an RFC 3339 time with a zone (Z or ±hh:mm) such as "2026-03-01T08:00:00Z"';
  if (value instanceof Date) throwInvalid(source, `${where}: expected ${expected} in quotes, found a YAML timestamp; quote the time`);
  const match = typeof value === 'string' ? RFC3339_TIME.exec(value) : null;
  if (match === null) throwInvalid(source, `${where}: expected ${expected}, found ${describe(value)}`);

  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const offsetHours = Number(match[9] ?? 0);
  const offsetMinutes = Number(match[10] ?? 0);
  const problem = dateTimeRangeProblem({ year, month, day, hour, minute, second, offsetHours, offsetMinutes });
  if (problem !== null) throwInvalid(source, `${where}: ${JSON.stringify(value)} is not a valid time (${problem}); expected ${expected}`);

  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, keeps years 0 to 99 as they are.
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, Number((match[7] ?? '.').slice(1, 4).padEnd(3, '0')));
  const offset = (match[8] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000;

  return date.getTime() - offset;
}

function assertPatientId(id: unknown, source: string, where: string): string {
  if (typeof id !== 'string' || !FHIR_ID.test(id)) {
    // The value is not quoted: a wrong entry may hold a patient's name or another identifier.
    throwInvalid(source, `${where}: expected a FHIR patient id (1 to 64 characters of A-Z, a-z, 0-9, '-' or '.'), found ${typeof id === 'string' ? `a string of ${id.length} characters that is not one` : describe(id)}`);
  }

  return id;
}

function throwInvalid(source: string, detail: string): never {
  throw new CareSourceError('WG_CARE_PANEL_INVALID', `Invalid care panel ${source}: ${detail}.`);
}

function throwNotFound(file: string, error: unknown, setting: string): never {
  const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  throw new CareSourceError('WG_CARE_PANEL_NOT_FOUND', `Cannot read the care panel file ${file} (${reason}); check ${setting}.`, { cause: error });
}

/** Returns whether `value` is a plain mapping; a Map from `!!omap` or a Set from `!!set` is not one. */
function isRecord(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const prototype: unknown = Object.getPrototypeOf(value);

  return prototype === Object.prototype || prototype === null;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Map) return 'an !!omap (write a plain mapping without the tag)';
  if (value instanceof Set) return 'a !!set (write a list without the tag)';
  if (value instanceof Date) return 'a YAML timestamp';
  if (value instanceof Uint8Array) return 'binary data (!!binary)';
  if (typeof value === 'object') return 'a mapping';
  // YAML writes these as .nan, .inf and -.inf, and JSON.stringify would turn them into null.
  if (Number.isNaN(value)) return '.nan (not a number)';
  if (value === Number.POSITIVE_INFINITY) return '.inf (infinity)';
  if (value === Number.NEGATIVE_INFINITY) return '-.inf (minus infinity)';
  const text = JSON.stringify(value) ?? String(value);

  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Returns the first line of an error's message without yaml's trailing colon. */
function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);

  return message.split('\n')[0]!.replace(/:$/, '');
}

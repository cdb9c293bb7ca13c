import type { PatientPseudonymizer } from '../features/patient.ts';
import { CareSourceError } from './errors.ts';
import { fetchSearchSet, fetchResource, patientIdOf, startDeadline, type FhirFetchOptions, type FhirResource } from './fhir-client.ts';
import { ExpiringMap } from './expiring-map.ts';
import type { CareRelationshipSource, PatientFlags } from './source.ts';

/** Code system of the HL7 v3 ActCode security labels that flag patients. */
export const ACT_CODE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
/** `meta.security` code for a celebrity (VIP) patient. */
export const VIP_CODE = 'CELEB';
/** `meta.security` code for a patient who is also an employee. */
export const EMPLOYEE_CODE = 'EMP';

/** FHIR resource id syntax: 1 to 64 characters of `A-Z a-z 0-9 - .` (FHIR R4, datatype `id`). */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
/** A patient pseudonym as `PatientPseudonymizer` writes it: 32 lowercase hex digits. */
const PSEUDONYM = /^[0-9a-f]{32}$/;
/** Shared-cache value of a user who has no Practitioner resource. */
const UNKNOWN_CARE_SET = 'unknown';
const NO_FLAGS: PatientFlags = Object.freeze({ vip: false, employee: false });
const FLAGS_KEY = 'care:flags';
const CENSUS_KEY = 'care:census';

/** The shared cache the source writes through, such as Wardgate's Redis key-value store. */
export interface CareCache {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlMs: number): Promise<void>;
}

export interface FhirCareSourceOptions {
  /** Base URL of the FHIR R4 API, such as `https://ehr.hospital.test/fhir`. */
  readonly fhirBase: string;
  readonly pseudonymizer: PatientPseudonymizer;
  /** How long a care set, the flag list or the census stays valid, in seconds (shared cache). */
  readonly ttlSeconds: number;
  /** Shared cache (Redis); without it only the in-process cache is used. */
  readonly cache?: CareCache;
  /** How long a care set, the flag list or the census stays in process memory, in milliseconds; default 10 000, capped at the TTL. */
  readonly localTtlMs?: number;
  /** Timeout of one FHIR request in milliseconds; default 2000. */
  readonly timeoutMs?: number;
  /**
   * Overall deadline of one lookup in milliseconds, across all its requests and pages. Default
   * 5000. A lookup is a care set (the Practitioner read and three searches), the flag list or
   * the census.
   */
  readonly searchTimeoutMs?: number;
  /** After a failed fetch, how long the source returns "unknown" without sending requests, in milliseconds; default 5000. */
  readonly retryAfterMs?: number;
  /** How far back Encounter and Appointment searches look, in days; default 30. */
  readonly lookbackDays?: number;
  /** Extra request headers, such as an `authorization` header for the FHIR API. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Clock in milliseconds, for the caches; default `Date.now`. */
  readonly now?: () => number;
  /** Called once when fetches start failing, with the first error. */
  readonly onOutage?: (error: Error) => void;
  /** Called once when a fetch succeeds again after an outage. */
  readonly onRecovered?: () => void;
}

/**
 * Creates a care source that queries the FHIR API for the patients a practitioner cares for:
 * `CareTeam?participant=Practitioner/{user}`, `Encounter?participant=Practitioner/{user}` and
 * `Appointment?practitioner=Practitioner/{user}` (the last two within `lookbackDays` before the
 * request time). The user's subject is used as the Practitioner id; a user without a Practitioner
 * resource gets null. Patient flags come from one search for patients whose `meta.security`
 * carries the HL7 v3 ActCode `CELEB` (VIP) or `EMP` (employee). The census (patients with an
 * encounter in progress) comes from one search, `Encounter?status=in-progress`.
 *
 * Patient ids are pseudonymised as soon as they are read. Care sets are cached per user in the
 * shared cache (key `care:{user}`, hash-tagged for Redis Cluster) for `ttlSeconds` and in process
 * for `localTtlMs`. The flag list and the census are one shared key each (`care:flags`,
 * `care:census`). A shared-cache value of the wrong shape is treated as missing and overwritten.
 * Once the flag list or the census in process memory has expired, callers get it unchanged while
 * one refresh runs in the background, and only the first load makes callers wait. A care set is
 * loaded while its caller waits. Every lookup must finish within `searchTimeoutMs`. A failed
 * fetch returns null (unknown), never throws, and reports the outage once through `onOutage`.
 *
 * @throws {CareSourceError} `WG_CARE_INVALID_OPTION` for an invalid option, at construction.
 */
export function createFhirCareSource(options: FhirCareSourceOptions): CareRelationshipSource {
  assertOptions(options);

  return new FhirCareSource(options);
}

class FhirCareSource implements CareRelationshipSource {
  readonly #options: FhirCareSourceOptions;
  readonly #base: URL;
  readonly #ttlMs: number;
  readonly #localTtlMs: number;
  readonly #now: () => number;
  readonly #careSets: ExpiringMap<ReadonlySet<string> | null>;
  readonly #inFlight = new Map<string, Promise<ReadonlySet<string> | null>>();
  #flags: { readonly map: ReadonlyMap<string, PatientFlags>; readonly expires: number } | null = null;
  #flagsInFlight: Promise<ReadonlyMap<string, PatientFlags> | null> | null = null;
  #census: { readonly set: ReadonlySet<string>; readonly expires: number } | null = null;
  #censusInFlight: Promise<ReadonlySet<string> | null> | null = null;
  #failedUntil = 0;
  #down = false;

  constructor(options: FhirCareSourceOptions) {
    this.#options = options;
    this.#base = new URL(options.fhirBase.endsWith('/') ? options.fhirBase : `${options.fhirBase}/`);
    this.#ttlMs = options.ttlSeconds * 1000;
    this.#localTtlMs = Math.min(options.localTtlMs ?? 10_000, this.#ttlMs);
    this.#now = options.now ?? Date.now;
    this.#careSets = new ExpiringMap(this.#localTtlMs, 10_000, this.#now);
  }

  async careSet(user: string, time: number): Promise<ReadonlySet<string> | null> {
    const cached = this.#careSets.get(user);
    if (cached !== undefined) return cached;
    if (!FHIR_ID.test(user)) return null;

    let pending = this.#inFlight.get(user);
    if (!pending) {
      pending = this.#loadCareSet(user, time).finally(() => this.#inFlight.delete(user));
      this.#inFlight.set(user, pending);
    }

    return pending;
  }

  async patientFlags(pseudonym: string): Promise<PatientFlags> {
    const flags = await this.#currentFlags();

    return flags?.get(pseudonym) ?? NO_FLAGS;
  }

  /**
   * Looks the patient up in the hospital census: the patients of `Encounter?status=in-progress`.
   * The census is the server's state now, so `time` is ignored, and replaying old traffic
   * through this source gets today's census. During an outage the last census read stays in
   * use however old it is, and null means that no census has been read yet. Once the census in
   * memory has expired, lookups get it unchanged while one refresh runs in the background.
   */
  async inEncounter(pseudonym: string, _time: number): Promise<boolean | null> {
    const census = await this.#currentCensus();

    return census === null ? null : census.has(pseudonym);
  }

  /** Returns the flag list in memory and refreshes it in the background once expired. Waits only when none has been loaded. */
  async #currentFlags(): Promise<ReadonlyMap<string, PatientFlags> | null> {
    const flags = this.#flags;
    if (flags === null) return this.#loadFlagsOnce();

    if (flags.expires <= this.#now()) refreshInBackground(this.#loadFlagsOnce());
    return flags.map;
  }

  /** Returns the census in memory and refreshes it in the background once expired. Waits only when none has been loaded. */
  async #currentCensus(): Promise<ReadonlySet<string> | null> {
    const census = this.#census;
    if (census === null) return this.#loadCensusOnce();

    if (census.expires <= this.#now()) refreshInBackground(this.#loadCensusOnce());
    return census.set;
  }

  async #loadCareSet(user: string, time: number): Promise<ReadonlySet<string> | null> {
    const key = `care:{${encodeURIComponent(user)}}`;
    const shared = parseCareSet(await this.#cacheGet(key));
    if (shared !== undefined) {
      this.#careSets.set(user, shared);
      return shared;
    }

    if (this.#now() < this.#failedUntil) return null;
    try {
      const set = await this.#fetchCareSet(user, time);
      this.#recovered();
      this.#careSets.set(user, set);
      await this.#cacheSet(key, set === null ? UNKNOWN_CARE_SET : JSON.stringify([...set]));
      return set;
    } catch (error) {
      this.#failed(error as Error);
      return null;
    }
  }

  async #fetchCareSet(user: string, time: number): Promise<ReadonlySet<string> | null> {
    const options = this.#fetchOptions();
    const practitioner = await fetchResource(this.#url(`Practitioner/${user}`), options);
    if (practitioner === null) return null;

    const since = new Date(time - (this.#options.lookbackDays ?? 30) * 86_400_000).toISOString().slice(0, 10);
    const reference = `Practitioner/${user}`;
    const searches = [
      this.#url('CareTeam', { participant: reference, status: 'active' }),
      this.#url('Encounter', { participant: reference, date: `ge${since}` }),
      this.#url('Appointment', { practitioner: reference, date: `ge${since}` }),
    ];
    const bundles = await Promise.all(searches.map((url) => fetchSearchSet(url, options)));

    const pseudonyms = new Set<string>();
    for (const resource of bundles.flat()) {
      for (const id of patientsOf(resource, this.#base)) pseudonyms.add(this.#options.pseudonymizer.pseudonymize(id));
    }

    return Object.freeze(pseudonyms);
  }

  async #loadFlagsOnce(): Promise<ReadonlyMap<string, PatientFlags> | null> {
    if (!this.#flagsInFlight) {
      this.#flagsInFlight = this.#loadFlags().finally(() => {
        this.#flagsInFlight = null;
      });
    }

    return this.#flagsInFlight;
  }

  async #loadFlags(): Promise<ReadonlyMap<string, PatientFlags> | null> {
    const shared = parseFlags(await this.#cacheGet(FLAGS_KEY));
    if (shared !== null) {
      this.#flags = { map: shared, expires: this.#now() + this.#localTtlMs };
      return shared;
    }

    if (this.#now() < this.#failedUntil) return this.#flags?.map ?? null;
    try {
      const security = [VIP_CODE, EMPLOYEE_CODE].map((code) => `${ACT_CODE_SYSTEM}|${code}`).join(',');
      const patients = await fetchSearchSet(this.#url('Patient', { _security: security, _elements: 'id,meta' }), this.#fetchOptions());
      this.#recovered();

      const map = new Map<string, PatientFlags>();
      for (const patient of patients) {
        if (patient.resourceType !== 'Patient' || typeof patient.id !== 'string' || !FHIR_ID.test(patient.id)) continue;
        const codes = securityCodes(patient);
        map.set(this.#options.pseudonymizer.pseudonymize(patient.id), Object.freeze({ vip: codes.has(VIP_CODE), employee: codes.has(EMPLOYEE_CODE) }));
      }
      this.#flags = { map, expires: this.#now() + this.#localTtlMs };
      await this.#cacheSet(FLAGS_KEY, JSON.stringify(Object.fromEntries([...map].map(([pseudonym, flags]) => [pseudonym, [flags.vip, flags.employee]]))));
      return map;
    } catch (error) {
      this.#failed(error as Error);
      // Flags change rarely, so the last list read stays in use during an outage.
      return this.#flags?.map ?? null;
    }
  }

  async #loadCensusOnce(): Promise<ReadonlySet<string> | null> {
    if (!this.#censusInFlight) {
      this.#censusInFlight = this.#loadCensus().finally(() => {
        this.#censusInFlight = null;
      });
    }

    return this.#censusInFlight;
  }

  async #loadCensus(): Promise<ReadonlySet<string> | null> {
    const shared = parsePseudonyms(await this.#cacheGet(CENSUS_KEY));
    if (shared !== null) {
      const set = Object.freeze(new Set(shared));
      this.#census = { set, expires: this.#now() + this.#localTtlMs };
      return set;
    }

    if (this.#now() < this.#failedUntil) return this.#census?.set ?? null;
    try {
      const encounters = await fetchSearchSet(this.#url('Encounter', { status: 'in-progress', _elements: 'subject' }), this.#fetchOptions());
      this.#recovered();

      const pseudonyms = new Set<string>();
      for (const id of censusPatientsOf(encounters, this.#base)) pseudonyms.add(this.#options.pseudonymizer.pseudonymize(id));
      const set = Object.freeze(pseudonyms);
      this.#census = { set, expires: this.#now() + this.#localTtlMs };
      await this.#cacheSet(CENSUS_KEY, JSON.stringify([...set]));
      return set;
    } catch (error) {
      this.#failed(error as Error);
      return this.#census?.set ?? null;
    }
  }

  #url(path: string, query: Record<string, string> = {}): URL {
    const url = new URL(path, this.#base);
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
    if (Object.keys(query).length > 0) url.searchParams.set('_count', '100');

    return url;
  }

  /** Returns the options of one lookup, with a new overall deadline that all its requests share. */
  #fetchOptions(): FhirFetchOptions {
    return {
      timeoutMs: this.#options.timeoutMs ?? 2000,
      headers: this.#options.headers ?? {},
      deadline: startDeadline(this.#options.searchTimeoutMs ?? 5000),
    };
  }

  async #cacheGet(key: string): Promise<string | null> {
    try {
      return (await this.#options.cache?.get(key)) ?? null;
    } catch {
      // The shared cache is an optimisation, so when Redis is down the source queries FHIR directly.
      return null;
    }
  }

  async #cacheSet(key: string, value: string): Promise<void> {
    try {
      await this.#options.cache?.set(key, value, this.#ttlMs);
    } catch {
      // Same as above: a failed write only costs a later fetch.
    }
  }

  #failed(error: Error): void {
    this.#failedUntil = this.#now() + (this.#options.retryAfterMs ?? 5000);
    if (this.#down) return;
    this.#down = true;
    this.#options.onOutage?.(error);
  }

  #recovered(): void {
    if (!this.#down) return;
    this.#down = false;
    this.#options.onRecovered?.();
  }
}

/**
 * Lets a refresh run without a waiting caller. The loaders catch fetch and cache errors and
 * report them through `onOutage`, so this catch only keeps an exception thrown by that callback
 * from becoming an unhandled rejection, which would end the process.
 */
function refreshInBackground(refresh: Promise<unknown>): void {
  refresh.catch(() => {});
}

/** Patient ids a CareTeam (subject), Encounter (subject) or Appointment (participant actors) names. */
function patientsOf(resource: FhirResource, base: URL): string[] {
  const ids: string[] = [];
  const subject = patientIdOf(resource.subject, base);
  if (subject !== null) ids.push(subject);

  if (resource.resourceType === 'Appointment' && Array.isArray(resource.participant)) {
    for (const participant of resource.participant as Array<{ actor?: unknown }>) {
      const actor = patientIdOf(participant?.actor, base);
      if (actor !== null) ids.push(actor);
    }
  }

  return ids.filter((id) => FHIR_ID.test(id));
}

/**
 * Patient ids of the in-progress Encounters of a census search. An Encounter that states
 * another status is skipped, in case a server ignores the `status` parameter.
 */
function censusPatientsOf(encounters: readonly FhirResource[], base: URL): string[] {
  const ids: string[] = [];
  for (const encounter of encounters) {
    if (encounter.resourceType !== 'Encounter') continue;
    if (encounter.status !== undefined && encounter.status !== 'in-progress') continue;

    const id = patientIdOf(encounter.subject, base);
    if (id !== null && FHIR_ID.test(id)) ids.push(id);
  }

  return ids;
}

/** Parses a shared-cache value written as a JSON array of pseudonyms. Returns null when it is absent or has another shape. */
function parsePseudonyms(value: string | null): string[] | null {
  const parsed = parseJson(value);

  return Array.isArray(parsed) && parsed.every(isPseudonym) ? parsed : null;
}

/**
 * Parses a shared-cache care set: `unknown` (no Practitioner resource) gives null, and a JSON
 * array of pseudonyms gives the set. Returns undefined when the value is absent or has another shape.
 */
function parseCareSet(value: string | null): ReadonlySet<string> | null | undefined {
  if (value === UNKNOWN_CARE_SET) return null;

  const pseudonyms = parsePseudonyms(value);
  return pseudonyms === null ? undefined : Object.freeze(new Set(pseudonyms));
}

/**
 * Parses the shared-cache flag list, a JSON object that maps each pseudonym to `[vip, employee]`.
 * Returns null when the value is absent or has another shape.
 */
function parseFlags(value: string | null): Map<string, PatientFlags> | null {
  const parsed = parseJson(value);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return null;

  const map = new Map<string, PatientFlags>();
  for (const [pseudonym, flags] of Object.entries(parsed)) {
    if (!isPseudonym(pseudonym)) return null;
    if (!Array.isArray(flags) || flags.length !== 2) return null;
    const [vip, employee] = flags as unknown[];
    if (typeof vip !== 'boolean' || typeof employee !== 'boolean') return null;

    map.set(pseudonym, Object.freeze({ vip, employee }));
  }

  return map;
}

/** Parses JSON, returning null for an absent or unparsable value. */
function parseJson(value: string | null): unknown {
  if (value === null) return null;

  try {
    return JSON.parse(value);
  } catch {
    return null;
  }
}

function isPseudonym(value: unknown): value is string {
  return typeof value === 'string' && PSEUDONYM.test(value);
}

function securityCodes(patient: FhirResource): Set<string> {
  const labels = (patient.meta as { security?: unknown } | undefined)?.security;
  const codes = new Set<string>();
  if (!Array.isArray(labels)) return codes;

  for (const label of labels as Array<{ system?: unknown; code?: unknown }>) {
    if (label?.system === ACT_CODE_SYSTEM && typeof label.code === 'string') codes.add(label.code);
  }

  return codes;
}

function assertOptions(options: FhirCareSourceOptions): void {
  let base: URL | null = null;
  try {
    base = new URL(options.fhirBase);
  } catch {
    base = null;
  }
  if (base === null || (base.protocol !== 'http:' && base.protocol !== 'https:')) {
    invalidOption('fhirBase', 'an http:// or https:// URL such as https://ehr.hospital.test/fhir', JSON.stringify(options.fhirBase));
  }

  if (!Number.isInteger(options.ttlSeconds) || options.ttlSeconds < 1) {
    invalidOption('ttlSeconds', 'a whole number of seconds, 1 or more', String(options.ttlSeconds));
  }

  for (const name of ['localTtlMs', 'timeoutMs', 'searchTimeoutMs', 'retryAfterMs', 'lookbackDays'] as const) {
    const value = options[name];
    if (value !== undefined && (!Number.isInteger(value) || value < 0)) invalidOption(name, 'a whole number, 0 or more', String(value));
  }
}

function invalidOption(option: string, expected: string, received: string): never {
  throw new CareSourceError('WG_CARE_INVALID_OPTION', `Invalid option ${option}: expected ${expected}, received ${received}.`);
}

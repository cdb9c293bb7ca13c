import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';

import { ScorerError } from '../errors.ts';
import { literalMatches, matchPatientPaths, NO_PATIENT_PATHS, type PatientPaths } from './patient-paths.ts';

/** FHIR resource id syntax: 1 to 64 characters of `A-Z a-z 0-9 - .` (FHIR R4, datatype `id`). */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

/** Search parameters whose value references the patient a request is about. */
const PATIENT_PARAMETERS = Object.freeze(['patient', 'subject']);

/** Maximum patient ids one request may name; more is treated as malformed input. */
export const MAX_PATIENTS_PER_REQUEST = 50;

/** Maximum path length, query included, that the extractor parses. */
export const MAX_PATH_LENGTH = 8192;

/** Minimum length in bytes of the key that turns patient ids into pseudonyms. */
export const MIN_PATIENT_KEY_BYTES = 32;

/**
 * Extracts the patient ids a request names, in order of appearance and without
 * duplicates. Recognised FHIR forms: `/fhir/Patient/{id}`, `/fhir/Patient/{id}/...` (for example
 * `$everything`), the search parameters `patient` and `subject` (also `subject:Patient`) with
 * a bare id or a reference (`Patient/{id}`, versioned or absolute, see `referencedIds`),
 * repeated or comma-separated (FHIR search OR), on other resource
 * types than Patient (on Patient they are checked but name no patient). `beneficiary` on
 * Coverage counts the same way, as do chains to `_id` through these parameters (`patient._id`,
 * `subject:Patient._id`). Also recognised: `_id` on a Patient search, history or operation, and
 * any valid `Patient/{id}` reference in any other parameter (see `patientParameterKind`). The segments `fhir` and `Patient` match in any case and without
 * `;` path parameters, parameter names in any case and with a `[...]` suffix, and `;` separates
 * parameters as `&` does. Each of `patientPaths` (`scorer.patient_paths`) that
 * matches the path adds the segment at its `{id}` (see `matchPatientPaths`), checked like a
 * FHIR id.
 *
 * @throws {ScorerError} `WG_SCORER_INVALID_INPUT` for an oversized path, an invalid id or
 *   more than {@link MAX_PATIENTS_PER_REQUEST} ids.
 */
export function extractPatientIds(path: string, patientPaths: PatientPaths = NO_PATIENT_PATHS): string[] {
  if (typeof path !== 'string') {
    throwInvalidPath(`expected a string, received ${typeof path}`);
  }

  if (path.length > MAX_PATH_LENGTH) {
    throwInvalidPath(`expected at most ${MAX_PATH_LENGTH} characters, received ${path.length}`);
  }

  const queryStart = path.indexOf('?');
  const pathname = queryStart === -1 ? path : path.slice(0, queryStart);
  const query = queryStart === -1 ? '' : path.slice(queryStart + 1);
  const ids = new Set<string>();

  const segments = pathname.split('/');
  // FHIR names are case-sensitive, but an upstream that accepts `/FHIR/patient;v=1/1` (any case,
  // `;` path parameters dropped) must not hide the patient, so literals match as in templates.
  const fhirIndex = segments.findIndex((segment) => literalMatches(segment, 'fhir'));
  const isPatientType = fhirIndex !== -1 && segments[fhirIndex + 1] !== undefined && literalMatches(segments[fhirIndex + 1]!, 'patient');
  if (isPatientType && segments.length > fhirIndex + 2) {
    const id = segments[fhirIndex + 2]!;
    if (id !== '' && !id.startsWith('$') && !id.startsWith('_')) {
      ids.add(assertPatientId(id, 'path segment after /fhir/Patient/', '/fhir/Patient/123'));
    }
  }
  for (const match of matchPatientPaths(pathname, patientPaths)) {
    ids.add(assertPatientId(match.id, `path segment at {id} of ${match.template}`, match.template.replace('{id}', '123')));
  }
  const after = segments.slice(fhirIndex + 2);
  // `_id` names patients on a type-level Patient search, history or operation (`$match`).
  const searchesPatients = isPatientType && (after.length === 0 || (after.length === 1 && (after[0] === '' || after[0]!.startsWith('_') || after[0]!.startsWith('$'))));

  if (fhirIndex !== -1 && query !== '') {
    const resourceType = segments[fhirIndex + 1] ?? '';
    // Some servers also split the query at `;`, so a parameter after one counts too.
    for (const [name, value] of new URLSearchParams(query.replace(/;/g, '&'))) {
      const kind = patientParameterKind(name, searchesPatients, literalMatches(resourceType, 'coverage'));
      if (kind === 'data' || kind === 'boolean') continue;

      const firstLink = lenientParameterName(name).split('.')[0]!;
      const colon = firstLink.indexOf(':');
      const base = (colon === -1 ? firstLink : firstLink.slice(0, colon)).toLowerCase();
      const modifier = colon === -1 ? '' : firstLink.slice(colon + 1).toLowerCase();
      if (kind === 'other' || (modifier === 'not' && base !== '_id')) {
        // Any other parameter, `patient:not` included, names the patient of each valid
        // `Patient/{id}` reference in it, as the audit trail's pseudonymizer reads it.
        for (const reference of value.split(',')) {
          for (const id of patientReferenceIds(reference)) {
            if (FHIR_ID.test(id)) ids.add(id);
          }
        }
        continue;
      }

      // The Patient resource has no `patient` or `subject` search parameter, and a read names its
      // patient in the path. Such a parameter there is still checked but names no patient.
      const counted = !(isPatientType && PATIENT_PARAMETERS.includes(base));
      for (const reference of value.split(',')) {
        for (const id of referencedIds(reference)) {
          const checked = assertPatientId(id, `search parameter ${name}`, `${name}=Patient/123`);
          if (counted) ids.add(checked);
        }
      }
    }
  }

  if (ids.size > MAX_PATIENTS_PER_REQUEST) {
    throwInvalidPath(`expected at most ${MAX_PATIENTS_PER_REQUEST} patient ids, received ${ids.size}`);
  }

  return [...ids];
}

/**
 * Returns a query parameter name as lenient servers read it, so that a patient parameter cannot
 * hide behind another spelling. PHP drops leading spaces and cuts a name at a NUL byte, and qs
 * (Express) and PHP read `patient[]` and `patient[0]` as `patient`, so the name ends at its
 * first `[`. The audit trail's pseudonymizer reads names the same way.
 */
export function lenientParameterName(name: string): string {
  return name.replace(/^ +/, '').split('\0')[0]!.replace(/\[.*$/, '');
}

/** Returns whether the request is a FHIR bulk export (`$everything` or `$export`). */
export function isBulkExport(path: string): boolean {
  const queryStart = path.indexOf('?');
  const pathname = queryStart === -1 ? path : path.slice(0, queryStart);
  const last = pathname.slice(pathname.lastIndexOf('/') + 1);

  return last === '$everything' || last === '$export';
}

/**
 * Turns patient ids into keyed pseudonyms (HMAC-SHA256, first 128 bits in hex), so baselines
 * can count distinct patients without storing a clear id.
 */
export class PatientPseudonymizer {
  readonly #key: KeyObject;

  constructor(key: Uint8Array) {
    if (!(key instanceof Uint8Array) || key.byteLength < MIN_PATIENT_KEY_BYTES) {
      const received = key instanceof Uint8Array ? `${key.byteLength} bytes` : typeof key;
      throw new ScorerError(
        'WG_SCORER_INVALID_OPTION',
        `Invalid option patientKey: expected at least ${MIN_PATIENT_KEY_BYTES} random bytes, received ${received}. ` +
          'Generate a key with crypto.randomBytes(32) and keep it outside the repository.',
        { detail: { option: 'patientKey' } },
      );
    }

    this.#key = createSecretKey(Buffer.from(key));
  }

  pseudonymize(patientId: string): string {
    return createHmac('sha256', this.#key).update(patientId, 'utf8').digest('hex').slice(0, 32);
  }
}

/** Segments after which a reference names a patient id, compared in lowercase, as the audit trail's pseudonymizer reads them. */
const PATIENT_REFERENCE_SEGMENTS = new Set(['patient', 'patients']);

/**
 * Returns the ids that a value of a patient search parameter names: a bare id, or the segment
 * after each `Patient` segment of a reference, such as `Patient/123`, `Patient/123/_history/2`
 * or the absolute `https://ehr.example/fhir/Patient/123`. A value with `/` but no such segment
 * is returned whole, so that it fails the id check.
 */
function referencedIds(reference: string): string[] {
  if (!reference.includes('/')) return [reference];

  const ids = patientReferenceIds(reference);
  return ids.length > 0 ? ids : [reference];
}

/** Returns the segment after each `Patient` (or `patients`) segment of a reference, unchecked, except segments that start with `_`. */
function patientReferenceIds(reference: string): string[] {
  const texts = reference.split('/');
  return texts.filter((text, index) => index > 0 && PATIENT_REFERENCE_SEGMENTS.has(texts[index - 1]!.toLowerCase()) && !text.startsWith('_'));
}

/**
 * Kind of search parameter by what its values contain. `ids` are bare patient ids or
 * references. `data` describes a patient without naming one (`subject:Patient.name`).
 * `boolean` is `true` or `false` (`patient:missing`). The values of `other` name a patient
 * only in a `Patient/{id}` reference.
 */
export type PatientParameterKind = 'ids' | 'data' | 'boolean' | 'other';

/**
 * Classifies a search parameter by its name, modifiers and chains included, for both
 * `extractPatientIds` and the audit trail's pseudonymizer. The name is read as
 * `lenientParameterName` reads it.
 *
 * @param searchesPatients whether the request searches the Patient type, where `_id` names
 *   patients and `identifier` describes them.
 * @param onCoverage whether the FHIR resource type is Coverage, whose `beneficiary` parameter
 *   references only Patient resources (FHIR R4).
 */
export function patientParameterKind(name: string, searchesPatients: boolean, onCoverage: boolean): PatientParameterKind {
  const chain = lenientParameterName(name).split('.');
  const links = chain.map((link) => {
    const colon = link.indexOf(':');
    return { base: (colon === -1 ? link : link.slice(0, colon)).toLowerCase(), modifier: colon === -1 ? '' : link.slice(colon + 1) };
  });
  const first = links[0]!;
  if (first.base === '_has') return 'other';

  const patientParameters = onCoverage ? [...PATIENT_PARAMETERS, 'beneficiary'] : PATIENT_PARAMETERS;
  // `patient._id` and `subject:Patient._id` name the patient by its id, as `patient` does.
  const namesPatientById = chain.length === 2 && patientParameters.includes(first.base) && ['', 'patient'].includes(first.modifier.toLowerCase()) && links[1]!.base === '_id' && links[1]!.modifier === '';
  if (namesPatientById) return 'ids';

  // Any other chain through a patient reference searches the patient's own data, such as its name.
  if (links.slice(0, -1).some((link) => patientParameters.includes(link.base))) return 'data';

  const lastLink = links[links.length - 1]!;
  if (patientParameters.includes(lastLink.base)) {
    const modifier = lastLink.modifier.toLowerCase();
    if (modifier === '' || modifier === 'patient' || modifier === 'not') return 'ids';
    if (modifier === 'missing') return 'boolean';
    // Another resource type (subject:Group) references no patient; any other modifier searches patient data.
    return /^[A-Z][A-Za-z]+$/.test(lastLink.modifier) ? 'other' : 'data';
  }
  if (chain.length === 1 && searchesPatients && first.base === '_id') return 'ids';
  if (chain.length === 1 && searchesPatients && first.base === 'identifier') return 'data';
  return 'other';
}

/** Checks a patient id against the FHIR id syntax; `example` shows a valid request of the same form. */
function assertPatientId(id: string, source: string, example: string): string {
  if (!FHIR_ID.test(id)) {
    throw new ScorerError(
      'WG_SCORER_INVALID_INPUT',
      `Invalid patient id in the ${source}: expected 1 to 64 characters of A-Z, a-z, 0-9, '-' or '.', ` +
        `received ${describeInvalidId(id)}. Send the id of a Patient resource, such as ${example}.`,
      { detail: { field: 'path', source } },
    );
  }

  return id;
}

/**
 * Says what is wrong with an id without quoting any of it, since the message reaches the audit
 * trail and logs: the length in characters, and where the first character not allowed is.
 */
function describeInvalidId(id: string): string {
  const characters = [...id];
  const position = characters.findIndex((character) => !/^[A-Za-z0-9.-]$/.test(character));
  if (position === -1) return `${characters.length} characters`;
  return `${characters.length} characters; the first character not allowed is at position ${position + 1}`;
}

function throwInvalidPath(received: string): never {
  throw new ScorerError('WG_SCORER_INVALID_INPUT', `Invalid request path for the scorer: ${received}.`, {
    detail: { field: 'path' },
  });
}

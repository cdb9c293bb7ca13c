import { extractPatientIds, PatientPseudonymizer } from '../../scorer/features/patient.ts';
import type { AuditEntry } from '../ports.ts';

/** Path segments after which the next segment is a patient id (FHIR `Patient`, the demo app's `patients`). */
const PATIENT_SEGMENTS = new Set(['Patient', 'patients']);

/** Marks a pseudonym inside a recorded path, so `/fhir/Patient/123` becomes `/fhir/Patient/~3fa9...`. */
export const PSEUDONYM_PREFIX = '~';

/**
 * Replaces patient identifiers in audit entries with keyed pseudonyms (HMAC-SHA256 with the
 * configured patient key, the same pseudonyms the scorer uses in baselines):
 *
 * - `path`: every id that `extractPatientIds` finds, and the segment after any `Patient` or
 *   `patients` segment, is replaced in the path and query; the pseudonyms go to `patients`.
 * - `patient_id`: replaced by `patient`, its pseudonym.
 *
 * A path whose patient ids cannot be parsed is recorded without its query and with every
 * segment after a patient segment replaced by `~unparsed`, and `path_redacted: true`.
 */
export class PatientFieldPseudonymizer {
  readonly #pseudonymizer: PatientPseudonymizer;

  constructor(patientKey: Uint8Array) {
    this.#pseudonymizer = new PatientPseudonymizer(patientKey);
  }

  /** Returns a copy of `entry` with patient identifiers replaced; the input is not changed. */
  apply(entry: AuditEntry): Record<string, unknown> {
    const fields: Record<string, unknown> = { ...entry };

    if (typeof fields.patient_id === 'string') {
      fields.patient = this.#pseudonymizer.pseudonymize(fields.patient_id);
      delete fields.patient_id;
    }

    if (typeof fields.path === 'string') {
      const { path, patients, redacted } = this.pseudonymizePath(fields.path);
      fields.path = path;
      if (patients.length > 0) fields.patients = patients;
      if (redacted) fields.path_redacted = true;
    }
    return fields;
  }

  /** Replaces the patient ids of a path (query included) by pseudonyms. */
  pseudonymizePath(original: string): { path: string; patients: string[]; redacted: boolean } {
    let ids: string[];
    try {
      ids = extractPatientIds(original);
    } catch {
      return { path: redactUnparsed(original), patients: [], redacted: true };
    }

    const queryStart = original.indexOf('?');
    const pathname = queryStart === -1 ? original : original.slice(0, queryStart);
    const segments = pathname.split('/');
    for (let i = 1; i < segments.length; i++) {
      const segment = segments[i]!;
      if (PATIENT_SEGMENTS.has(segments[i - 1]!) && segment !== '' && !segment.startsWith('$') && !segment.startsWith('_') && !ids.includes(segment)) ids.push(segment);
    }

    let path = original;
    const patients: string[] = [];
    for (const id of ids) {
      const pseudonym = this.#pseudonymizer.pseudonymize(id);
      patients.push(pseudonym);
      path = path.replace(new RegExp(`(?<![A-Za-z0-9\\-.~%])${escapeRegExp(id)}(?![A-Za-z0-9\\-.])`, 'g'), `${PSEUDONYM_PREFIX}${pseudonym}`);
    }
    return { path, patients, redacted: false };
  }
}

function redactUnparsed(original: string): string {
  const queryStart = original.indexOf('?');
  const segments = (queryStart === -1 ? original : original.slice(0, queryStart)).split('/');
  for (let i = 1; i < segments.length; i++) {
    if (PATIENT_SEGMENTS.has(segments[i - 1]!)) segments[i] = `${PSEUDONYM_PREFIX}unparsed`;
  }
  return segments.join('/');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
}

import { NO_PATIENT_PATHS, type PatientPaths } from '../../scorer/features/patient-paths.ts';
import { PatientTargetPseudonymizer } from '../patient-target.ts';
import type { AuditEntry } from '../ports.ts';

/**
 * Replaces patient identifiers in audit entries with keyed pseudonyms (HMAC-SHA256 with the
 * configured patient key, the same pseudonyms the scorer uses in baselines):
 *
 * - `path`: goes through `PatientTargetPseudonymizer.pseudonymizeTarget`, so each patient id
 *   becomes `~<pseudonym>` and the pseudonyms go to `patients`. When a part could not be
 *   parsed it is `~redacted` and the entry gets `path_redacted: true`.
 * - `patient_id`: replaced by `patient`, its pseudonym.
 *
 * An entry that already carries `patients` was pseudonymised by its producer (break-glass
 * and notice entries), so `~<pseudonym>` values in its path are kept and listed.
 */
export class PatientFieldPseudonymizer {
  readonly #pseudonymizer: PatientTargetPseudonymizer;

  constructor(patientKey: Uint8Array, patientPaths: PatientPaths = NO_PATIENT_PATHS) {
    this.#pseudonymizer = new PatientTargetPseudonymizer(patientKey, patientPaths);
  }

  /** Returns a copy of `entry` with patient identifiers replaced; the input is not changed. */
  apply(entry: AuditEntry): Record<string, unknown> {
    const fields: Record<string, unknown> = { ...entry };

    if (typeof fields.patient_id === 'string') {
      fields.patient = this.#pseudonymizer.pseudonym(fields.patient_id);
      delete fields.patient_id;
    }

    if (typeof fields.path === 'string') {
      const listed = Array.isArray(fields.patients) ? fields.patients.filter((item): item is string => typeof item === 'string') : null;
      const { target, patients, redacted } = this.#pseudonymizer.pseudonymizeTarget(fields.path, { acceptPseudonyms: listed !== null });
      const all = [...new Set([...(listed ?? []), ...patients])];
      fields.path = target;
      if (all.length > 0) fields.patients = all;
      else delete fields.patients;
      if (redacted) fields.path_redacted = true;
    }
    return fields;
  }

  /** Replaces the patient ids of a path (query included) by pseudonyms. */
  pseudonymizePath(original: string): { path: string; patients: string[]; redacted: boolean } {
    const { target, patients, redacted } = this.#pseudonymizer.pseudonymizeTarget(original);
    return { path: target, patients, redacted };
  }
}

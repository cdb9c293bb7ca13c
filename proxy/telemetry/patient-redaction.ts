import { NO_PATIENT_PATHS, type PatientPaths } from '../../scorer/features/patient-paths.ts';
import { PatientTargetPseudonymizer } from '../patient-target.ts';

/** Longest redacted path or query kept in a span attribute or a log line. */
export const MAX_REDACTED_LENGTH = 2048;

/**
 * Replaces patient identifiers in request targets with keyed pseudonyms before the target
 * goes into a span or a log line. It uses `PatientTargetPseudonymizer.pseudonymizeTarget`, so
 * spans and logs carry the same `~<pseudonym>` form as the audit trail and the review queue.
 */
export class PatientPathRedactor {
  readonly #pseudonymizer: PatientTargetPseudonymizer;

  /** @throws {ScorerError} `WG_SCORER_INVALID_OPTION` when the key is shorter than 32 bytes. */
  constructor(patientKey: Uint8Array, patientPaths: PatientPaths = NO_PATIENT_PATHS) {
    this.#pseudonymizer = new PatientTargetPseudonymizer(patientKey, patientPaths);
  }

  /** Returns what replaces `patientId` in a redacted target: `~` and its pseudonym. */
  pseudonym(patientId: string): string {
    return this.#pseudonymizer.token(patientId);
  }

  /**
   * Redacts a raw request target (`/path?query`) and returns its path and query (without
   * `?`), each cut to {@link MAX_REDACTED_LENGTH} characters. A non-string target gives empty parts.
   */
  redact(target: string): { path: string; query: string } {
    const redacted = this.#pseudonymizer.pseudonymizeTarget(target).target;
    const queryStart = redacted.indexOf('?');
    return {
      path: truncate(queryStart === -1 ? redacted : redacted.slice(0, queryStart)),
      query: truncate(queryStart === -1 ? '' : redacted.slice(queryStart + 1)),
    };
  }

  /**
   * Redacts a request target and returns it as one string, for log lines. Pseudonyms already
   * in the target are kept, so redacting twice gives the same result as redacting once.
   */
  redactTarget(target: string): string {
    return truncate(this.#pseudonymizer.pseudonymizeTarget(target, { acceptPseudonyms: true }).target);
  }
}

function truncate(text: string): string {
  return text.length > MAX_REDACTED_LENGTH ? `${text.slice(0, MAX_REDACTED_LENGTH)}...` : text;
}

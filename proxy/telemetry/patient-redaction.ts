import { extractPatientIds, PatientPseudonymizer } from '../../scorer/features/patient.ts';

/** Parameters whose every value names a patient (FHIR search). */
const PATIENT_PARAMETERS = new Set(['patient', 'subject']);

/** A pseudonym this class made; redacting it again leaves it as it is. */
const PSEUDONYM = /^pseudonym-[0-9a-f]{32}$/;

/** Longest redacted path or query kept in a span attribute or a log line. */
export const MAX_REDACTED_LENGTH = 2048;

/**
 * Replaces patient identifiers in request paths with keyed pseudonyms before the path goes
 * into a span, a metric or a log line. The pseudonym is `pseudonym-` followed by the same
 * HMAC-SHA256 value the scorer stores in baselines (keyed with `patient_key`), so the SOC
 * can follow one patient across traces without seeing the id.
 *
 * More counts as a patient id here than the scorer extracts, because a miss here leaks an
 * id. Replaced are:
 * - every path segment after a `Patient` segment, except `$operation` and `_history`-style ones;
 * - every value of the `patient` and `subject` parameters;
 * - every `Patient/{id}` reference in any parameter;
 * - any segment or value equal to an id that `extractPatientIds` found.
 *
 * Redacting twice gives the same result as redacting once.
 */
export class PatientPathRedactor {
  readonly #pseudonymizer: PatientPseudonymizer;

  /** @throws {ScorerError} `WG_SCORER_INVALID_OPTION` when the key is shorter than 32 bytes. */
  constructor(patientKey: Uint8Array) {
    this.#pseudonymizer = new PatientPseudonymizer(patientKey);
  }

  /** Returns the pseudonym that replaces `patientId`. */
  pseudonym(patientId: string): string {
    return `pseudonym-${this.#pseudonymizer.pseudonymize(patientId)}`;
  }

  /**
   * Redacts a request target (`/path?query`) and returns its path and query (without `?`),
   * each cut to {@link MAX_REDACTED_LENGTH} characters. Invalid input gives empty or
   * unchanged parts instead of an error.
   */
  redact(target: string): { path: string; query: string } {
    const text = typeof target === 'string' ? target : '';
    const queryStart = text.indexOf('?');
    const pathname = queryStart === -1 ? text : text.slice(0, queryStart);
    const query = queryStart === -1 ? '' : text.slice(queryStart + 1);

    let known = new Set<string>();
    try {
      known = new Set(extractPatientIds(text));
    } catch {
      // Invalid or too many ids: the structural rules below still replace them.
    }

    return {
      path: truncate(this.#redactPathname(pathname, known)),
      query: truncate(this.#redactQuery(query, known)),
    };
  }

  /** Redacts a request target and returns it as one string, for log lines. */
  redactTarget(target: string): string {
    const { path, query } = this.redact(target);
    return query === '' && !String(target).includes('?') ? path : `${path}?${query}`;
  }

  #redactPathname(pathname: string, known: ReadonlySet<string>): string {
    const segments = pathname.split('/');
    for (let index = 0; index < segments.length; index++) {
      const segment = segments[index]!;
      const decoded = safeDecode(segment);
      const afterPatient = index > 0 && safeDecode(segments[index - 1]!) === 'Patient' && segment !== '' && !/^[$_]/.test(decoded);
      if ((afterPatient || known.has(decoded)) && !PSEUDONYM.test(decoded)) segments[index] = this.pseudonym(decoded);
    }
    return segments.join('/');
  }

  #redactQuery(query: string, known: ReadonlySet<string>): string {
    if (query === '') return '';

    return query
      .split('&')
      .map((pair) => {
        const equals = pair.indexOf('=');
        if (equals === -1) return pair;
        const name = safeDecode(pair.slice(0, equals).replace(/\+/g, ' '));
        const raw = pair.slice(equals + 1);
        const value = safeDecode(raw.replace(/\+/g, ' '));
        const namesPatient = PATIENT_PARAMETERS.has(name.split(':')[0]!);

        let changed = false;
        const pieces = value.split(',').map((piece) => {
          const isReference = piece.startsWith('Patient/');
          const id = isReference ? piece.slice('Patient/'.length) : piece;
          if (id === '' || PSEUDONYM.test(id) || !(namesPatient || isReference || known.has(id))) return piece;
          changed = true;
          return `${isReference ? 'Patient/' : ''}${this.pseudonym(id)}`;
        });
        return changed ? `${pair.slice(0, equals)}=${encodeQueryValue(pieces.join(','))}` : pair;
      })
      .join('&');
  }
}

/** Percent-encodes a query value but keeps `/` and `,` readable, as RFC 3986 allows in a query. */
function encodeQueryValue(value: string): string {
  return encodeURIComponent(value).replace(/%2F/g, '/').replace(/%2C/g, ',');
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function truncate(text: string): string {
  return text.length > MAX_REDACTED_LENGTH ? `${text.slice(0, MAX_REDACTED_LENGTH)}...` : text;
}

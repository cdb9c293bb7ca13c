import { literalMatches, NO_PATIENT_PATHS, type PatientPaths } from '../scorer/features/patient-paths.ts';
import { PatientPseudonymizer, patientParameterKind, type PatientParameterKind } from '../scorer/features/patient.ts';

/** FHIR resource id syntax: 1 to 64 characters of `A-Z a-z 0-9 - .` (FHIR R4, datatype `id`). */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

/** A pseudonym inside a recorded target: `~` and 32 hex digits. `~` never occurs in a FHIR id. */
const PSEUDONYM_TOKEN = /^~[0-9a-f]{32}$/;

/** Written in place of a value that names or describes a patient but is not a valid id. */
export const REDACTED = '~redacted';

/** Path segments after which the next segment is a patient id, compared in lowercase (FHIR `Patient`, the demo app's `patients`). */
const PATIENT_SEGMENTS = new Set(['patient', 'patients']);

/** A request target with its patient ids replaced by pseudonyms. */
export interface PseudonymizedTarget {
  /** The target with each patient id replaced by `~<pseudonym>` and each unparsable patient value by `~redacted`. */
  readonly target: string;
  /** Pseudonyms (32 hex digits, without `~`) of the patients the target names, in order of appearance. */
  readonly patients: string[];
  /** True when some part of the target was replaced by `~redacted`. */
  readonly redacted: boolean;
}

export interface PseudonymizeOptions {
  /** Replace the values of query parameters that name no patient by `_` (review entries). Default false. */
  readonly dropOtherValues?: boolean;
  /**
   * Keep `~<pseudonym>` and `~redacted` where a patient id is expected, for targets that
   * went through this function already. Off for raw client targets, where such a value is an
   * invalid id and is redacted, so a client cannot plant a pseudonym in the audit trail.
   */
  readonly acceptPseudonyms?: boolean;
}

type Role = 'id' | 'redact' | 'other';

interface Part {
  readonly text: string;
  readonly role: Role;
}

/**
 * Turns a request target (path and query, raw as received or normalized) into the form that
 * the audit trail, spans, log lines, the review queue and break-glass entries record. The
 * same key gives the same pseudonyms as the scorer's baselines.
 *
 * Percent-escapes are decoded before matching (`+` as a space in the query). A patient id is:
 * - the segment after a `Patient` or `patients` segment (any case), unless it starts with `$` or `_`;
 * - each comma-separated value of the `patient` and `subject` parameters (any case), also with
 *   a type modifier such as `subject:Patient`, bare or as a `Patient/{id}` reference, and
 *   likewise of `beneficiary` on Coverage and of chains to `_id` such as `patient._id`;
 * - each value of `_id` when the request searches the Patient type;
 * - the id in any `Patient/{id}` reference in any other parameter;
 * - any other segment or value equal to one of these ids.
 *
 * Search parameters are classified by the scorer's `patientParameterKind`. A value in a
 * patient position that is not a valid FHIR id, any other chained search on a patient
 * (`subject:Patient.name=...`), `patient:identifier`, and `identifier` on a Patient search
 * become `~redacted`. A path segment that cannot be decoded cuts the target there:
 * it and everything after it, query included, become `~redacted`.
 */
export class PatientTargetPseudonymizer {
  readonly #pseudonymizer: PatientPseudonymizer;
  readonly #patientPaths: PatientPaths;

  /**
   * @param patientPaths the scorer's `scorer.patient_paths`, so that an id in a configured page
   *   path is replaced as well.
   * @throws {ScorerError} `WG_SCORER_INVALID_OPTION` when the key is shorter than 32 bytes.
   */
  constructor(patientKey: Uint8Array, patientPaths: PatientPaths = NO_PATIENT_PATHS) {
    this.#pseudonymizer = new PatientPseudonymizer(patientKey);
    this.#patientPaths = patientPaths;
  }

  /** Returns the pseudonym of a patient id: 32 hex digits, as the scorer stores it. */
  pseudonym(patientId: string): string {
    return this.#pseudonymizer.pseudonymize(patientId);
  }

  /** Returns what replaces a patient id inside a target: `~` and its pseudonym. */
  token(patientId: string): string {
    return `~${this.pseudonym(patientId)}`;
  }

  pseudonymizeTarget(target: string, options: PseudonymizeOptions = {}): PseudonymizedTarget {
    if (typeof target !== 'string') return { target: '', patients: [], redacted: false };

    const queryStart = target.indexOf('?');
    const rawPath = queryStart === -1 ? target : target.slice(0, queryStart);
    const rawQuery = queryStart === -1 ? null : target.slice(queryStart + 1);

    const path = parsePath(rawPath, this.#patientPaths);
    // Some servers also split the query at `;`, as extractPatientIds assumes, so both separate pairs here.
    const pairs = rawQuery === null ? [] : rawQuery.split(/[&;]/);
    const separators = rawQuery?.match(/[&;]/g) ?? [];
    const parameters = path.complete ? pairs.map((pair) => parseParameter(pair, path.resourceIsPatient, path.onCoverage)) : [];

    const ids: string[] = [];
    const collect = (part: Part) => {
      if (part.role === 'id' && !ids.includes(part.text)) ids.push(part.text);
    };
    path.segments.forEach((segment) => segment.parts?.forEach(collect));
    parameters.forEach((parameter) => parameter.pieces?.forEach((piece) => piece.forEach(collect)));

    const patients: string[] = [];
    let redacted = !path.complete;
    const render = (part: Part, keepOther: boolean): string => {
      if (part.role === 'id' || (part.role === 'other' && ids.includes(part.text))) {
        const pseudonym = this.pseudonym(part.text);
        if (!patients.includes(pseudonym)) patients.push(pseudonym);
        return `~${pseudonym}`;
      }
      if (part.role === 'redact') {
        if (part.text === '') return '';
        if (options.acceptPseudonyms && PSEUDONYM_TOKEN.test(part.text)) {
          if (!patients.includes(part.text.slice(1))) patients.push(part.text.slice(1));
          return part.text;
        }
        redacted = true;
        return REDACTED;
      }
      return keepOther ? encodeText(part.text) : '_';
    };

    const renderedPath = path.segments
      .map((segment) => {
        if (segment.parts === null) return REDACTED;
        if (segment.parts.every((part) => part.role === 'other' && !ids.includes(part.text))) return segment.raw;
        return segment.parts.map((part) => render(part, true)).join('%2F');
      })
      .join('/');

    const renderedQuery = parameters.map((parameter) => {
      if (parameter.pieces === null) {
        redacted = true;
        return REDACTED;
      }
      const unchanged = parameter.pieces.every((piece) => piece.every((part) => part.role === 'other' && !ids.includes(part.text)));
      if (unchanged && !options.dropOtherValues) return parameter.raw;
      if (!parameter.hasValue) return parameter.rawName;
      const value = parameter.pieces
        .map((piece) => {
          // A piece that names a patient keeps its reference form (`Patient/...`); other pieces may be dropped.
          const namesPatient = piece.some((part) => part.role !== 'other' || ids.includes(part.text));
          return namesPatient || !options.dropOtherValues ? piece.map((part) => render(part, true)).join('/') : '_';
        })
        .join(',');
      return `${parameter.rawName}=${value}`;
    });

    const query = renderedQuery.map((pair, index) => (index === 0 ? pair : `${separators[index - 1]}${pair}`)).join('');
    const rendered = rawQuery === null || !path.complete ? renderedPath : `${renderedPath}?${query}`;
    return { target: rendered, patients, redacted };
  }
}

interface ParsedSegment {
  readonly raw: string;
  /** Decoded parts split at encoded slashes; null when the segment cannot be decoded. */
  readonly parts: Part[] | null;
}

interface ParsedPath {
  readonly segments: ParsedSegment[];
  /** False when a segment cannot be decoded, so the segments end at it. */
  readonly complete: boolean;
  readonly resourceIsPatient: boolean;
  /** Whether the segment after the first `fhir` segment is `Coverage`, as the scorer reads the resource type. */
  readonly onCoverage: boolean;
}

function parsePath(rawPath: string, patientPaths: PatientPaths): ParsedPath {
  const segments: ParsedSegment[] = [];
  let previous = '';
  let last = '';

  for (const raw of rawPath.split('/')) {
    const decoded = decode(raw, false);
    if (decoded === null) {
      segments.push({ raw, parts: null });
      return { segments, complete: false, resourceIsPatient: false, onCoverage: false };
    }

    const parts: Part[] = [];
    for (const text of decoded.split('/')) {
      const isPatientPosition = PATIENT_SEGMENTS.has(withoutParameters(previous)) && text !== '' && !text.startsWith('$') && !text.startsWith('_');
      parts.push({ text, role: isPatientPosition ? idRole(text) : 'other' });
      previous = text;
      // `_search`, `_history` and operations such as `$match` keep the resource type of the segment before them.
      if (text !== '' && !text.startsWith('_') && !text.startsWith('$')) last = text;
    }
    segments.push({ raw, parts });
  }

  markTemplateIds(segments, patientPaths);
  const texts = segments.flatMap((segment) => segment.parts ?? []).map((part) => part.text);
  const fhirIndex = texts.findIndex((text) => literalMatches(text, 'fhir'));
  const onCoverage = fhirIndex !== -1 && texts[fhirIndex + 1] !== undefined && literalMatches(texts[fhirIndex + 1]!, 'coverage');
  return { segments, complete: true, resourceIsPatient: PATIENT_SEGMENTS.has(withoutParameters(last)), onCoverage };
}

/** Returns a path segment in lowercase without its `;` path parameters, as `literalMatches` compares it. */
function withoutParameters(segment: string): string {
  const semicolon = segment.indexOf(';');
  return (semicolon === -1 ? segment : segment.slice(0, semicolon)).toLowerCase();
}

/**
 * Gives the `{id}` position of every matching `scorer.patient_paths` template the role of a
 * patient id, as the scorer's `extractPatientIds` reads it. Literal segments match by
 * `literalMatches`, and the template may be a prefix of the path that ends at a segment
 * boundary.
 */
function markTemplateIds(segments: ParsedSegment[], patientPaths: PatientPaths): void {
  if (patientPaths.length === 0) return;
  // The path starts with "/", so the first part is empty and the template's segments follow it.
  const parts = segments.flatMap((segment) => segment.parts ?? []).slice(1);
  for (const template of patientPaths) {
    if (parts.length < template.segments.length) continue;
    const matches = template.segments.every((literal, index) => (index === template.idIndex ? parts[index]!.text !== '' : literalMatches(parts[index]!.text, literal)));
    if (!matches) continue;
    const target = parts[template.idIndex]!;
    for (const segment of segments) {
      const index = segment.parts?.indexOf(target) ?? -1;
      if (index !== -1) segment.parts![index] = { text: target.text, role: idRole(target.text) };
    }
  }
}

interface ParsedParameter {
  readonly raw: string;
  readonly rawName: string;
  readonly hasValue: boolean;
  /** Comma-separated values, each split at `/`; null when the pair cannot be decoded. */
  readonly pieces: Part[][] | null;
}

function parseParameter(raw: string, resourceIsPatient: boolean, onCoverage: boolean): ParsedParameter {
  const equals = raw.indexOf('=');
  const rawName = equals === -1 ? raw : raw.slice(0, equals);
  const hasValue = equals !== -1;
  const name = decode(rawName, true);
  const value = decode(hasValue ? raw.slice(equals + 1) : '', true);
  if (name === null || value === null) return { raw, rawName, hasValue, pieces: null };

  const kind = patientParameterKind(name, resourceIsPatient, onCoverage);
  const pieces = value.split(',').map((piece) => parsePiece(piece, kind));
  return { raw, rawName, hasValue, pieces };
}

function parsePiece(piece: string, kind: PatientParameterKind): Part[] {
  if (kind === 'data') return [{ text: piece, role: 'redact' }];
  if (kind === 'boolean') return [{ text: piece, role: piece === 'true' || piece === 'false' ? 'other' : 'redact' }];

  const texts = piece.split('/');
  const parts: Part[] = [];
  let foundReference = false;
  texts.forEach((text, index) => {
    const afterPatient = index > 0 && PATIENT_SEGMENTS.has(texts[index - 1]!.toLowerCase()) && !text.startsWith('_');
    if (afterPatient) foundReference = true;
    parts.push({ text, role: afterPatient ? idRole(text) : 'other' });
  });

  if (kind !== 'ids' || foundReference) return parts;
  if (texts.length === 1) return [{ text: piece, role: idRole(piece) }];
  // Any other reference in a patient parameter (Group/g-1, a malformed one) is redacted whole.
  return [{ text: piece, role: 'redact' }];
}

function idRole(text: string): Role {
  return FHIR_ID.test(text) ? 'id' : 'redact';
}

/** Percent-decodes text (`+` as a space in a query); null for an invalid escape or invalid UTF-8. */
function decode(text: string, query: boolean): string | null {
  try {
    return decodeURIComponent(query ? text.replace(/\+/g, ' ') : text);
  } catch {
    return null;
  }
}

/** Percent-encodes text for a path segment or query value, keeping characters RFC 3986 allows there unencoded. */
function encodeText(text: string): string {
  return encodeURIComponent(text).replace(/%3A/g, ':').replace(/%40/g, '@').replace(/%24/g, '$').replace(/%7C/gi, '|');
}

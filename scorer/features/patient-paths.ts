import { ScorerError } from '../errors.ts';

/** Maximum number of templates in `scorer.patient_paths`. */
export const MAX_PATIENT_PATHS = 32;

/** The template segment that marks the position of the patient id. */
const ID_SEGMENT = '{id}';

/**
 * A literal template segment: characters that a normalized path keeps unencoded
 * (RFC 3986 `pchar` without percent-escapes). A segment with other characters could never
 * match a normalized path.
 */
const LITERAL_SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]+$/;

/** A validated template of `scorer.patient_paths`, split into its path segments. */
export interface PatientPathTemplate {
  /** The template as configured, such as `/patients/{id}`. */
  readonly template: string;
  /** The segments after the leading `/`, with `{id}` in place. */
  readonly segments: readonly string[];
  /** Position of `{id}` in `segments`. */
  readonly idIndex: number;
}

/** Compiled `scorer.patient_paths` templates, as `compilePatientPaths` returns them. */
export type PatientPaths = readonly PatientPathTemplate[];

/** No templates: only the FHIR forms name patients. */
export const NO_PATIENT_PATHS: PatientPaths = Object.freeze([]);

/**
 * Returns what is wrong with one patient path template, or null when it is valid. A valid
 * template starts with `/`, has no query, no empty, `.` or `..` segments, exactly one `{id}`
 * segment after at least one literal segment, and literal segments of characters a normalized
 * path keeps unencoded. The message follows the configuration reader's form:
 * "expected ..., got ...", then the fix.
 */
export function patientPathProblem(template: unknown): string | null {
  if (typeof template !== 'string') return `expected a path template string such as "/patients/{id}", got ${typeof template}`;

  const quoted = JSON.stringify(template);
  if (!template.startsWith('/')) return `expected an absolute path starting with "/", got ${quoted}; write it like "/patients/{id}"`;
  if (template.includes('?')) return `expected a path without a query, got ${quoted}; remove "?" and what follows, because templates match the path only`;

  const segments = template.slice(1).split('/');
  if (segments.includes('')) return `expected no empty segments, got ${quoted}; remove the doubled or trailing "/"`;
  if (segments.some((segment) => segment === '.' || segment === '..')) return `expected no "." or ".." segments, got ${quoted}; normalized paths never contain them`;

  const idCount = segments.filter((segment) => segment === ID_SEGMENT).length;
  if (idCount !== 1) return `expected exactly one {id} segment, got ${idCount} in ${quoted}; write it like "/patients/{id}"`;
  if (segments[0] === ID_SEGMENT) return `expected a literal segment before {id}, got ${quoted}; a first segment {id} would make the first segment of every path a patient id`;

  const invalid = segments.find((segment) => segment !== ID_SEGMENT && !LITERAL_SEGMENT.test(segment));
  if (invalid !== undefined) {
    return `expected literal segments of A-Z, a-z, 0-9 and -._~!$&'()*+,;=:@ and {id} as a whole segment, got ${JSON.stringify(invalid)} in ${quoted}`;
  }

  return null;
}

/**
 * Validates and compiles patient path templates.
 *
 * @param option the option name for messages, such as `patientPaths`.
 * @throws {ScorerError} `WG_SCORER_INVALID_OPTION` for a list that is not an array of strings,
 *   more than {@link MAX_PATIENT_PATHS} templates or an invalid template.
 */
export function compilePatientPaths(templates: readonly string[], option = 'patientPaths'): PatientPaths {
  if (!Array.isArray(templates)) throwInvalidTemplates(option, `expected a list of path templates, got ${typeof templates}`);
  if (templates.length > MAX_PATIENT_PATHS) throwInvalidTemplates(option, `expected at most ${MAX_PATIENT_PATHS} templates, got ${templates.length}`);

  const compiled = templates.map((template, index) => {
    const problem = patientPathProblem(template);
    if (problem !== null) throwInvalidTemplates(`${option}[${index}]`, problem);

    const segments = Object.freeze(template.slice(1).split('/'));
    return Object.freeze({ template, segments, idIndex: segments.indexOf(ID_SEGMENT) });
  });

  return Object.freeze(compiled);
}

/**
 * Matches a path (without the query) against the templates and returns the id and template of
 * each match, in template order. A template matches when the path has at least as many segments,
 * every literal segment is equal and the segment at `{id}` is not empty. The path may go on
 * after the template, so `/patients/{id}` also matches `/patients/p-1/notes`. The id is the raw
 * segment and is not checked here. Literal segments match in any letter case and without
 * `;` path parameters (see {@link literalMatches}).
 */
export function matchPatientPaths(pathname: string, templates: PatientPaths): Array<{ readonly id: string; readonly template: string }> {
  if (templates.length === 0) return [];

  const segments = pathname.split('/').slice(1);
  const matches: Array<{ id: string; template: string }> = [];
  for (const template of templates) {
    if (segments.length < template.segments.length) continue;

    const literalsMatch = template.segments.every((segment, index) => index === template.idIndex || literalMatches(segments[index]!, segment));
    const id = segments[template.idIndex]!;
    if (literalsMatch && id !== '') matches.push({ id, template: template.template });
  }

  return matches;
}

/**
 * Returns whether a path segment matches a template's literal segment. Letter case and `;`
 * path parameters are ignored, because some upstream frameworks route `/PACS/viewer;v=1/...`
 * like `/pacs/viewer/...`. A patient page must not escape the template that way.
 */
export function literalMatches(pathSegment: string, literal: string): boolean {
  const semicolon = pathSegment.indexOf(';');
  const bare = semicolon === -1 ? pathSegment : pathSegment.slice(0, semicolon);

  return bare.toLowerCase() === literal.toLowerCase();
}

function throwInvalidTemplates(option: string, message: string): never {
  throw new ScorerError('WG_SCORER_INVALID_OPTION', `Invalid option ${option}: ${message}.`, { detail: { option } });
}

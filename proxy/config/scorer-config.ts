import type { Node } from 'yaml';
import { DEFAULT_UNEXPLAINED_FLOOR } from '../../scorer/scorer.ts';
import { MAX_PATIENT_PATHS, patientPathProblem } from '../../scorer/features/patient-paths.ts';
import type { OptionReader } from './reader.ts';

/** `scorer:` section: batching and deadline of model inference, model reload polling, the floor and patient path templates. */
export interface ScorerRuntimeConfig {
  /** Maximum rows in one inference run. */
  readonly batch_max: number;
  /** How long the first queued request waits for others before inference, in microseconds. */
  readonly batch_wait_us: number;
  /** Maximum wait for inference per request, in milliseconds; past it the route's scorer fail mode applies. */
  readonly deadline_ms: number;
  /** Interval at which the model file is checked for changes, in milliseconds; 0 turns hot reload off. */
  readonly reload_poll_ms: number;
  /** The hand-set risk floor for patients whom nothing explains (docs/model-card.md). */
  readonly unexplained_floor: {
    /** `unexplained_hour_ratio` at which the floor would reach 1 without the `max` cap. */
    readonly scale: number;
    /** Usual share of unexplained accesses at which the floor has faded out; 0 turns it off. */
    readonly usual_limit: number;
    /** Highest value of the floor. Set below the policy's block threshold, the floor alone cannot block. */
    readonly max: number;
  };
  /**
   * Path templates of pages that name a patient besides the FHIR forms, such as
   * `/patients/{id}`; empty by default. A template also matches longer paths that start with it.
   * The audit trail, spans, logs and the review queue replace the ids it finds with pseudonyms.
   */
  readonly patient_paths: readonly string[];
}

/** `care:` section: where care relationships and patient flags come from. */
export interface CareConfig {
  readonly source: 'none' | 'panel' | 'fhir';
  /** Panel file (YAML or JSON), for `source: panel`; resolved against the configuration's folder. */
  readonly panel_file?: string;
  /** Base URL of the FHIR R4 API, for `source: fhir`, such as `https://ehr.hospital.test/fhir`. */
  readonly fhir_base?: string;
  /** Lifetime of a cached care set or flag list, in seconds. */
  readonly ttl: number;
  /** Time limit of one FHIR request, in milliseconds. */
  readonly request_timeout_ms: number;
  /** Time limit of one whole FHIR lookup (all its requests and pages), in milliseconds. */
  readonly search_timeout_ms: number;
}

export const SCORER_DEFAULTS: ScorerRuntimeConfig = Object.freeze({
  batch_max: 32,
  batch_wait_us: 200,
  deadline_ms: 200,
  reload_poll_ms: 1000,
  unexplained_floor: Object.freeze({ scale: DEFAULT_UNEXPLAINED_FLOOR.scale, usual_limit: DEFAULT_UNEXPLAINED_FLOOR.usualLimit, max: DEFAULT_UNEXPLAINED_FLOOR.max }),
  patient_paths: Object.freeze([]),
});
export const CARE_DEFAULTS: CareConfig = Object.freeze({ source: 'none', ttl: 300, request_timeout_ms: 2000, search_timeout_ms: 5000 });

/** Reads the optional `scorer:` and `care:` sections, reporting every invalid option. */
export function readScorerSections(
  reader: OptionReader,
  scorerNode: Node | undefined,
  careNode: Node | undefined,
  resolve: (value: string) => string,
): { scorer: ScorerRuntimeConfig; care: CareConfig } {
  return { scorer: readScorer(reader, scorerNode), care: readCare(reader, careNode, resolve) };
}

function readScorer(reader: OptionReader, node: Node | undefined): ScorerRuntimeConfig {
  if (node === undefined) return SCORER_DEFAULTS;
  const fields = reader.map(node, 'scorer', ['batch_max', 'batch_wait_us', 'deadline_ms', 'reload_poll_ms', 'unexplained_floor', 'patient_paths']) ?? new Map<string, Node>();
  const floorNode = fields.get('unexplained_floor');
  const floor = (floorNode === undefined ? null : reader.map(floorNode, 'scorer.unexplained_floor', ['scale', 'usual_limit', 'max'])) ?? new Map<string, Node>();
  const floorDefaults = SCORER_DEFAULTS.unexplained_floor;

  return {
    batch_max: reader.integer(fields.get('batch_max'), 'scorer.batch_max', 1, 4096, SCORER_DEFAULTS.batch_max),
    batch_wait_us: reader.integer(fields.get('batch_wait_us'), 'scorer.batch_wait_us', 0, 1_000_000, SCORER_DEFAULTS.batch_wait_us),
    deadline_ms: reader.integer(fields.get('deadline_ms'), 'scorer.deadline_ms', 1, 60_000, SCORER_DEFAULTS.deadline_ms),
    reload_poll_ms: reader.integer(fields.get('reload_poll_ms'), 'scorer.reload_poll_ms', 0, 3_600_000, SCORER_DEFAULTS.reload_poll_ms),
    unexplained_floor: {
      scale: reader.number(floor.get('scale'), 'scorer.unexplained_floor.scale', 0.01, 100, floorDefaults.scale),
      usual_limit: reader.number(floor.get('usual_limit'), 'scorer.unexplained_floor.usual_limit', 0, 1, floorDefaults.usual_limit),
      max: reader.number(floor.get('max'), 'scorer.unexplained_floor.max', 0, 1, floorDefaults.max),
    },
    patient_paths: readPatientPaths(reader, fields.get('patient_paths')),
  };
}

/** Reads `scorer.patient_paths`, reporting each invalid template at its own line. */
function readPatientPaths(reader: OptionReader, node: Node | undefined): readonly string[] {
  if (node === undefined) return SCORER_DEFAULTS.patient_paths;

  const items = reader.list(node, 'scorer.patient_paths');
  if (items.length > MAX_PATIENT_PATHS) {
    reader.report(node, 'scorer.patient_paths', `expected at most ${MAX_PATIENT_PATHS} templates, got ${items.length}; merge templates or remove unused ones`);
  }

  const templates: string[] = [];
  items.forEach((item, index) => {
    const option = `scorer.patient_paths[${index}]`;
    const template = reader.string(item, option);
    if (template === '') return;

    const problem = patientPathProblem(template);
    if (problem === null) templates.push(template);
    else reader.report(item, option, problem);
  });

  return templates;
}

function readCare(reader: OptionReader, node: Node | undefined, resolve: (value: string) => string): CareConfig {
  if (node === undefined) return CARE_DEFAULTS;
  const fields = reader.map(node, 'care', ['source', 'panel_file', 'fhir_base', 'ttl', 'request_timeout_ms', 'search_timeout_ms']) ?? new Map<string, Node>();
  const source = reader.oneOf(fields.get('source'), 'care.source', ['none', 'panel', 'fhir'], 'none');
  const panelFile = reader.optionalString(fields.get('panel_file'), 'care.panel_file');
  const fhirBase = reader.optionalString(fields.get('fhir_base'), 'care.fhir_base');

  if (source === 'panel' && panelFile === undefined) reader.report(node, 'care.panel_file', 'missing; care.source "panel" needs the path of a panel file');
  if (source === 'fhir' && fhirBase === undefined) reader.report(node, 'care.fhir_base', 'missing; care.source "fhir" needs the FHIR base URL, such as https://ehr.hospital.test/fhir');
  if (fhirBase !== undefined && !/^https?:\/\/[^/]+/.test(fhirBase)) {
    reader.report(fields.get('fhir_base'), 'care.fhir_base', `expected an http:// or https:// URL, got ${JSON.stringify(fhirBase)}`);
  }

  return {
    source,
    ...(panelFile !== undefined ? { panel_file: resolve(panelFile) } : {}),
    ...(fhirBase !== undefined ? { fhir_base: fhirBase } : {}),
    ttl: reader.integer(fields.get('ttl'), 'care.ttl', 1, 86_400, CARE_DEFAULTS.ttl),
    request_timeout_ms: reader.integer(fields.get('request_timeout_ms'), 'care.request_timeout_ms', 1, 60_000, CARE_DEFAULTS.request_timeout_ms),
    search_timeout_ms: reader.integer(fields.get('search_timeout_ms'), 'care.search_timeout_ms', 1, 120_000, CARE_DEFAULTS.search_timeout_ms),
  };
}

import type { BaselineStore } from '../baselines/store.ts';
import { NO_CARE_SOURCE, type CareRelationshipSource } from '../care/source.ts';
import { ScorerError, isScorerError } from '../errors.ts';
import type { ScoreInput } from '../types.ts';
import { buildFeatureVector, NO_PATIENT_CARE_FACTS, type CareFacts } from './extract.ts';
import { PatientPseudonymizer, extractPatientIds, isBulkExport } from './patient.ts';
import { NO_PATIENT_PATHS, type PatientPaths } from './patient-paths.ts';

export interface FeatureExtractorOptions {
  readonly store: BaselineStore;
  readonly pseudonymizer: PatientPseudonymizer;
  readonly careSource?: CareRelationshipSource;
  readonly utcOffsetMinutes?: number;
  /** Compiled `scorer.patient_paths` templates that name patients besides the FHIR forms; default none. */
  readonly patientPaths?: PatientPaths;
}

/**
 * Turns one request into its feature vector: patient ids to pseudonyms, care relationship and
 * patient flags from the care source, one baseline update in the store, then the features.
 * The scorer and `npm run eval` share it, so evaluation runs the production path.
 */
export class FeatureExtractor {
  readonly #store: BaselineStore;
  readonly #pseudonymizer: PatientPseudonymizer;
  readonly #careSource: CareRelationshipSource;
  readonly #utcOffsetMinutes: number;
  readonly #patientPaths: PatientPaths;

  constructor(options: FeatureExtractorOptions) {
    this.#store = options.store;
    this.#pseudonymizer = options.pseudonymizer;
    this.#careSource = options.careSource ?? NO_CARE_SOURCE;
    this.#utcOffsetMinutes = options.utcOffsetMinutes ?? 0;
    this.#patientPaths = options.patientPaths ?? NO_PATIENT_PATHS;
  }

  /**
   * @throws {ScorerError} `WG_SCORER_INVALID_INPUT` for a malformed path, ip or time,
   *   `WG_SCORER_STORE_UNAVAILABLE` when the store or the care source fails.
   */
  async extract(input: ScoreInput): Promise<Float32Array> {
    const pseudonyms = this.patientPseudonyms(input);
    const care = await this.#careFacts(input, pseudonyms);

    let raw;
    try {
      raw = await this.#store.observe(input, {
        patients: pseudonyms,
        outsideCare: care.outsideCare,
        flagged: care.flagged,
        notAdmitted: care.notAdmitted,
        unexplained: care.unexplained,
        bulkExport: isBulkExport(input.path),
      });
    } catch (error) {
      throw isScorerError(error)
        ? error
        : new ScorerError('WG_SCORER_STORE_UNAVAILABLE', `Baseline store failed: ${(error as Error).message}.`, { cause: error });
    }

    return buildFeatureVector(input, raw, { patientCount: pseudonyms.length, utcOffsetMinutes: this.#utcOffsetMinutes, care });
  }

  /**
   * Returns the pseudonyms of the patients the request names, in the order `extract` passes
   * them to the store.
   *
   * @throws {ScorerError} `WG_SCORER_INVALID_INPUT` for a malformed path.
   */
  patientPseudonyms(input: ScoreInput): string[] {
    return extractPatientIds(input.path, this.#patientPaths).map((id) => this.#pseudonymizer.pseudonymize(id));
  }

  async #careFacts(input: ScoreInput, pseudonyms: readonly string[]): Promise<CareFacts> {
    if (pseudonyms.length === 0) {
      return NO_PATIENT_CARE_FACTS;
    }

    try {
      const source = this.#careSource;
      const [careSet, flags, census] = await Promise.all([
        source.careSet(input.user, input.time),
        Promise.all(pseudonyms.map((pseudonym) => source.patientFlags(pseudonym))),
        source.inEncounter === undefined ? null : Promise.all(pseudonyms.map((pseudonym) => source.inEncounter!(pseudonym, input.time))),
      ]);
      const censusUnknown = census === null || census.some((answer) => answer === null);

      return {
        outsideCare: careSet === null ? 0 : pseudonyms.filter((pseudonym) => !careSet.has(pseudonym)).length,
        unknown: careSet === null,
        vip: flags.some((flag) => flag.vip),
        employee: flags.some((flag) => flag.employee),
        flagged: flags.filter((flag) => flag.vip || flag.employee).length,
        flaggedWithoutCare: flags.filter((flag, index) => (flag.vip || flag.employee) && (careSet === null || !careSet.has(pseudonyms[index]!))).length,
        notAdmitted: censusUnknown ? 0 : census.filter((answer) => answer === false).length,
        censusUnknown,
        unexplained: pseudonyms.map((pseudonym, index) => (careSet === null || !careSet.has(pseudonym)) && census?.[index] !== true),
      };
    } catch (error) {
      throw new ScorerError(
        'WG_SCORER_STORE_UNAVAILABLE',
        `Care relationship source failed: ${(error as Error).message}. The route's fail mode applies; check the care source.`,
        { cause: error },
      );
    }
  }
}

/**
 * Source from which the scorer learns which patients are in a clinician's care and which patients are
 * flagged (VIP, employee). Implementations fetch from the upstream's FHIR API (CareTeam,
 * Encounter, Appointment) or read a panel file; both cache. Patient identifiers cross this
 * interface only as keyed pseudonyms (see `PatientPseudonymizer`).
 */
export interface CareRelationshipSource {
  /**
   * Pseudonyms of the patients in the user's care at `time`, or null when the source cannot
   * tell (unknown practitioner, source unreachable). The scorer then treats the relationship
   * as unknown rather than absent.
   */
  careSet(user: string, time: number): Promise<ReadonlySet<string> | null>;
  /** Flags of one patient, by pseudonym. */
  patientFlags(pseudonym: string): Promise<PatientFlags>;
  /**
   * Whether the patient has an encounter in progress at `time` (admitted to a ward or being
   * seen in the emergency department), by pseudonym, or null when the source cannot tell.
   * Sources without census data leave it out, and the scorer treats the census as unknown.
   */
  inEncounter?(pseudonym: string, time: number): Promise<boolean | null>;
  close?(): Promise<void>;
}

export interface PatientFlags {
  readonly vip: boolean;
  readonly employee: boolean;
}

/** Used when no source is configured: relationship unknown, no flags. */
export const NO_CARE_SOURCE: CareRelationshipSource = {
  careSet: async () => null,
  patientFlags: async () => ({ vip: false, employee: false }),
};

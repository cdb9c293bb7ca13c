import type { DemoDataset, DemoPatient } from './patients.ts';

/**
 * Care relationships and patient flags of the demo data set, served by the demo FHIR API as
 * Practitioner, CareTeam, Encounter and Appointment resources and as `meta.security` labels on
 * Patient. The demo accounts (subjects `demo-physician` and `demo-nurse`) are practitioners with
 * patients in their care; the clerk (`demo-clerk`) is not a practitioner.
 */
export interface DemoCareData {
  /** Practitioner ids: the generated `dr-NNN` and the two clinical demo accounts. */
  readonly practitioners: readonly string[];
  /** Practitioners on each patient's care team, by patient id. */
  readonly careTeams: ReadonlyMap<string, readonly string[]>;
  readonly encounters: readonly DemoEncounter[];
  readonly appointments: readonly DemoAppointment[];
  /** HL7 v3 ActCode security labels (`CELEB`, `EMP`) by patient id. */
  readonly securityLabels: ReadonlyMap<string, readonly string[]>;
}

export interface DemoEncounter {
  readonly id: string;
  readonly patientId: string;
  readonly practitioner: string;
  /** FHIR R4 `Encounter.status`: `in-progress` for a patient still in hospital, `finished` after discharge. */
  readonly status: 'in-progress' | 'finished';
  /** Start of the encounter as an ISO 8601 string. */
  readonly start: string;
  /** End of a finished encounter as an ISO 8601 string, absent while the encounter is in progress. */
  readonly end?: string;
}

export interface DemoAppointment {
  readonly id: string;
  readonly patientId: string;
  readonly practitioner: string;
  readonly start: string;
}

export const DEMO_PHYSICIAN = 'demo-physician';
export const DEMO_NURSE = 'demo-nurse';

/** Patients flagged as VIP (`CELEB`) and as employees (`EMP`) in the demo. */
export const DEMO_VIP_PATIENTS = Object.freeze(['p-0007', 'p-0042']);
export const DEMO_EMPLOYEE_PATIENTS = Object.freeze(['p-0013', 'p-0099']);

const ENCOUNTER_START = '2025-01-15T07:30:00Z';
const DISCHARGED_START = '2025-01-10T09:00:00Z';
const DISCHARGED_END = '2025-01-14T16:00:00Z';
/** Every patient whose number is a multiple of this was discharged. */
const DISCHARGED_EVERY = 5;
const APPOINTMENT_START = '2025-01-16T10:00:00Z';
const cache = new WeakMap<DemoDataset, DemoCareData>();

/**
 * Returns the care data of a data set, built once: the physician cares for p-0001 to p-0020 and
 * has encounters with p-0021 to p-0025; the nurse cares for p-0001 to p-0010 and has
 * appointments with p-0030 to p-0032. Every other patient keeps its generated care team.
 *
 * Each patient has one encounter with the first practitioner of its care team. It is in
 * progress, except for the discharged patients (every fifth: p-0005, p-0010, ...), whose
 * encounters are finished. So the census (`Encounter?status=in-progress`) of the default 200
 * patients lists 160.
 */
export function demoCareData(dataset: DemoDataset): DemoCareData {
  const existing = cache.get(dataset);
  if (existing) return existing;

  const careTeams = new Map<string, string[]>();
  for (const patient of dataset.patients) careTeams.set(patient.id, [...patient.careTeam]);
  addToCareTeams(careTeams, dataset.patients, 1, 20, DEMO_PHYSICIAN);
  addToCareTeams(careTeams, dataset.patients, 1, 10, DEMO_NURSE);

  const encounters: DemoEncounter[] = dataset.patients.map((patient, index) => encounterOf(`enc-${patient.id}`, index + 1, patient.careTeam[0]!));
  for (let number = 21; number <= 25; number++) {
    encounters.push(encounterOf(`enc-${patientIdOf(number)}-physician`, number, DEMO_PHYSICIAN));
  }

  const appointments: DemoAppointment[] = [30, 31, 32].map((number) => ({ id: `apt-${patientIdOf(number)}`, patientId: patientIdOf(number), practitioner: DEMO_NURSE, start: APPOINTMENT_START }));

  const securityLabels = new Map<string, string[]>();
  for (const id of DEMO_VIP_PATIENTS) securityLabels.set(id, [...(securityLabels.get(id) ?? []), 'CELEB']);
  for (const id of DEMO_EMPLOYEE_PATIENTS) securityLabels.set(id, [...(securityLabels.get(id) ?? []), 'EMP']);

  const data: DemoCareData = Object.freeze({
    practitioners: Object.freeze([...dataset.practitioners, DEMO_PHYSICIAN, DEMO_NURSE]),
    careTeams,
    encounters: Object.freeze(encounters),
    appointments: Object.freeze(appointments),
    securityLabels,
  });
  cache.set(dataset, data);

  return data;
}

function addToCareTeams(careTeams: Map<string, string[]>, patients: readonly DemoPatient[], first: number, last: number, practitioner: string): void {
  for (let number = first; number <= last && number <= patients.length; number++) {
    careTeams.get(patientIdOf(number))?.push(practitioner);
  }
}

function encounterOf(id: string, patientNumber: number, practitioner: string): DemoEncounter {
  const patientId = patientIdOf(patientNumber);
  if (patientNumber % DISCHARGED_EVERY === 0) {
    return Object.freeze({ id, patientId, practitioner, status: 'finished', start: DISCHARGED_START, end: DISCHARGED_END });
  }

  return Object.freeze({ id, patientId, practitioner, status: 'in-progress', start: ENCOUNTER_START });
}

function patientIdOf(number: number): string {
  return `p-${String(number).padStart(4, '0')}`;
}

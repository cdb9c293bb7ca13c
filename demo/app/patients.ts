/**
 * Deterministic synthetic clinical data for the demo application. Every name is obviously
 * fake and every run with the same seed yields the same records.
 */

export interface DemoPatient {
  readonly id: string;
  readonly given: string;
  readonly family: string;
  readonly gender: 'female' | 'male' | 'other';
  /** Birth date as `YYYY-MM-DD`. */
  readonly birthDate: string;
  /** Practitioner ids on the patient's care team. */
  readonly careTeam: readonly string[];
}

export interface DemoObservation {
  readonly id: string;
  readonly patientId: string;
  /** LOINC code and display text. */
  readonly code: string;
  readonly display: string;
  readonly value: number;
  readonly unit: string;
  /** Effective time as an ISO 8601 string. */
  readonly effective: string;
}

export interface DemoDataset {
  readonly patients: readonly DemoPatient[];
  readonly observations: readonly DemoObservation[];
  readonly practitioners: readonly string[];
}

const GIVEN_NAMES = ['Testa', 'Fakir', 'Mocka', 'Dummo', 'Samplina', 'Placido', 'Stubby', 'Fixtura', 'Examplo', 'Demora'];
const FAMILY_NAMES = ['Notreal', 'Fakename', 'Sampleton', 'Testwood', 'Mockridge', 'Placeholder', 'Dummyfield', 'Synthetica'];
const GENDERS = ['female', 'male', 'other'] as const;
const VITAL_SIGNS = [
  { code: '8867-4', display: 'Heart rate', unit: '/min', min: 50, max: 120 },
  { code: '8480-6', display: 'Systolic blood pressure', unit: 'mm[Hg]', min: 95, max: 170 },
  { code: '8310-5', display: 'Body temperature', unit: 'Cel', min: 36, max: 39.5 },
  { code: '59408-5', display: 'Oxygen saturation in arterial blood by pulse oximetry', unit: '%', min: 88, max: 100 },
];
const PRACTITIONER_COUNT = 10;
/** Fixed reference time so that the data set does not depend on the clock. */
const REFERENCE_TIME = Date.UTC(2025, 0, 15, 8, 0, 0);

/** Generates `count` patients with 2 to 5 observations each from `seed` (mulberry32). */
export function generateDemoDataset(count = 200, seed = 0x5eed): DemoDataset {
  const random = mulberry32(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const practitioners = Array.from({ length: PRACTITIONER_COUNT }, (_, index) => `dr-${String(index + 1).padStart(3, '0')}`);
  const patients: DemoPatient[] = [];
  const observations: DemoObservation[] = [];

  for (let index = 1; index <= count; index++) {
    const id = `p-${String(index).padStart(4, '0')}`;
    const birth = new Date(Date.UTC(1930 + Math.floor(random() * 90), Math.floor(random() * 12), 1 + Math.floor(random() * 28)));
    const firstPractitioner = Math.floor(random() * PRACTITIONER_COUNT);

    patients.push(Object.freeze({
      id,
      given: pick(GIVEN_NAMES),
      family: `${pick(FAMILY_NAMES)}-${index}`,
      gender: pick(GENDERS),
      birthDate: birth.toISOString().slice(0, 10),
      careTeam: Object.freeze([practitioners[firstPractitioner]!, practitioners[(firstPractitioner + 3) % PRACTITIONER_COUNT]!]),
    }));

    const observationCount = 2 + Math.floor(random() * 4);
    for (let number = 1; number <= observationCount; number++) {
      const vital = pick(VITAL_SIGNS);
      observations.push(Object.freeze({
        id: `${id}-obs-${number}`,
        patientId: id,
        code: vital.code,
        display: vital.display,
        value: Math.round((vital.min + random() * (vital.max - vital.min)) * 10) / 10,
        unit: vital.unit,
        effective: new Date(REFERENCE_TIME - Math.floor(random() * 30 * 24) * 3_600_000).toISOString(),
      }));
    }
  }

  return Object.freeze({ patients: Object.freeze(patients), observations: Object.freeze(observations), practitioners: Object.freeze(practitioners) });
}

/** mulberry32: a small seeded 32-bit generator, deterministic across platforms. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;

  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

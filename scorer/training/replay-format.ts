import { inStay, type Stay } from '../care/panel-source.ts';
import type { CareRelationshipSource, PatientFlags } from '../care/source.ts';
import type { PatientPseudonymizer } from '../features/patient.ts';
import type { Panel, SimulatedRequest } from './simulator.ts';

/** One line of the replay JSON Lines format that `wardgate replay` reads. */
export interface ReplayRecord {
  /** ISO 8601 time of the request. */
  readonly time: string;
  readonly user: string;
  readonly groups: readonly string[];
  readonly ip: string;
  readonly user_agent: string;
  readonly method: string;
  readonly host: string;
  /** Path with the query string. */
  readonly path: string;
  readonly status: number;
  readonly bytes: number;
  readonly label: 'benign' | 'misuse';
  /** Misuse episode id; absent for benign records. */
  readonly episode?: string;
  /** The misuse kind, or `normal`. */
  readonly kind: string;
  readonly role: string;
  readonly route: string;
}

/** Converts a simulated request to its replay line. */
export function toReplayRecord(record: SimulatedRequest): ReplayRecord {
  const { input } = record;

  return {
    time: new Date(input.time).toISOString(),
    user: input.user,
    groups: input.groups,
    ip: input.ip,
    user_agent: input.userAgent,
    method: input.method,
    host: input.host,
    path: input.path,
    status: record.status,
    bytes: record.bytes,
    label: record.label,
    ...(record.episode === undefined ? {} : { episode: record.episode }),
    kind: record.kind,
    role: record.role,
    route: input.routeId,
  };
}

/**
 * Builds a care source over a simulation's panel, for training and `npm run eval`. Practitioners
 * not in the panel get `null` (relationship unknown), as a production source does for an
 * unknown practitioner. The panel is static: a patient stays in a practitioner's care for
 * the whole simulation once assigned.
 */
export function panelCareSource(panel: Panel, pseudonymizer: PatientPseudonymizer): CareRelationshipSource {
  const careSets = new Map<string, ReadonlySet<string>>();
  for (const [user, patients] of Object.entries(panel.practitioners)) {
    careSets.set(user, new Set(patients.map((id) => pseudonymizer.pseudonymize(id))));
  }
  const flags = new Map<string, PatientFlags>();
  for (const [id, value] of Object.entries(panel.patients)) {
    flags.set(pseudonymizer.pseudonymize(id), Object.freeze({ vip: value.vip === true, employee: value.employee === true }));
  }
  const none: PatientFlags = Object.freeze({ vip: false, employee: false });
  const stays = new Map<string, Stay[]>();
  for (const [id, list] of Object.entries(panel.stays)) {
    stays.set(pseudonymizer.pseudonymize(id), list.map(([start, end]) => [Date.parse(start), end === null ? Number.POSITIVE_INFINITY : Date.parse(end)] as const));
  }

  return {
    careSet: async (user) => careSets.get(user) ?? null,
    patientFlags: async (pseudonym) => flags.get(pseudonym) ?? none,
    inEncounter: async (pseudonym, time) => inStay(stays.get(pseudonym), time),
  };
}

/** Bounds on baseline state: each store applies the same values so their results agree. */
export interface SubjectLimits {
  /** Maximum distinct networks remembered per subject; further networks stay "new". */
  readonly networkCap: number;
  /** Maximum distinct user agent hashes remembered per subject. */
  readonly deviceCap: number;
  /** Maximum distinct patients (for a peer group: member and patient pairs) per hour or day bucket; counts saturate there. */
  readonly patientCap: number;
  /** Maximum distinct routes with patient requests remembered per subject. */
  readonly routeCap: number;
  /** Maximum patients in a user's patient history; further patients stay "new". */
  readonly historyCap: number;
  /** Days a patient stays in the history after the user last opened their record. */
  readonly historyWindowDays: number;
  /** When active minutes exceed this, all decayed counters are halved (integer division). */
  readonly decayAtMinutes: number;
}

export const USER_LIMITS: SubjectLimits = Object.freeze({
  networkCap: 64,
  deviceCap: 64,
  // A set of 1000 32-character pseudonyms stays under about 64 KiB in Redis.
  patientCap: 1000,
  routeCap: 64,
  // 16-character entries of a sorted set: about 100 KB at the cap. Billing staff, who open
  // the most distinct patients in the simulation, reach about 800 in 14 days.
  historyCap: 1024,
  historyWindowDays: 14,
  // About 40 working days of 8 hours: older behaviour fades with a half-life of that order.
  decayAtMinutes: 20_000,
});

export const PEER_LIMITS: SubjectLimits = Object.freeze({
  // peer.lua returns every remembered network to the in-process peer cache, so keep this small.
  networkCap: 256,
  deviceCap: 0,
  // NOTE: a large group saturates here under load, which lowers the peer's patient averages.
  patientCap: 20_000,
  routeCap: 0,
  historyCap: 0,
  historyWindowDays: 0,
  decayAtMinutes: 2_000_000,
});

/** Expiry of bucket and long-lived keys, in milliseconds. */
export const TTL_MS = Object.freeze({
  minute: 2 * 60_000,
  hour: 2 * 3_600_000,
  day: 2 * 86_400_000,
  long: 30 * 86_400_000,
});

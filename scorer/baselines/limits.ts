/** Bounds on baseline state: each store applies the same values so their results agree. */
export interface SubjectLimits {
  /** Maximum distinct networks remembered per subject; further networks stay "new". */
  readonly networkCap: number;
  /** Maximum distinct user agent hashes remembered per subject. */
  readonly deviceCap: number;
  /** Maximum (member, patient) pairs per hour or day bucket; counts saturate there. */
  readonly patientCap: number;
  /** When active minutes exceed this, all decayed counters are halved (integer division). */
  readonly decayAtMinutes: number;
}

export const USER_LIMITS: SubjectLimits = Object.freeze({
  networkCap: 64,
  deviceCap: 64,
  patientCap: 2000,
  // About 40 working days of 8 hours: older behaviour fades with a half-life of that order.
  decayAtMinutes: 20_000,
});

export const PEER_LIMITS: SubjectLimits = Object.freeze({
  networkCap: 1024,
  deviceCap: 1024,
  // NOTE: a large group saturates here under load, which lowers the peer's patient averages.
  patientCap: 20_000,
  decayAtMinutes: 2_000_000,
});

/** Expiry of bucket and long-lived keys, in milliseconds. */
export const TTL_MS = Object.freeze({
  minute: 2 * 60_000,
  hour: 2 * 3_600_000,
  day: 2 * 86_400_000,
  long: 30 * 86_400_000,
});

import type { SubjectLimits } from './limits.ts';
import { TTL_MS } from './limits.ts';
import type { Observation } from './observation.ts';
import type { ObserveExtras } from './store.ts';

/**
 * Redis keys of one user, in the order observe.lua expects them. The `{tag}` hash tag puts
 * all keys of a user into one Redis Cluster slot, which a Lua script requires.
 */
export function userKeys(prefix: string, observation: Observation): string[] {
  const base = `${prefix}{${observation.userTag}}:`;

  return [
    `${base}s`,
    `${base}w`,
    `${base}n`,
    `${base}a`,
    `${base}m:${observation.minute}`,
    `${base}h:${observation.hour}`,
    `${base}d:${observation.day}`,
    `${base}ph:${observation.hour}`,
    `${base}pd:${observation.day}`,
    `${base}r:${observation.hour}`,
    `${base}rp`,
    patientHistoryKey(prefix, observation.userTag),
  ];
}

/** Redis key of the user's patient history: a sorted set of {@link patientHistoryMember} to the last UTC day shown, -2 while pending or -1 while withheld. */
export function patientHistoryKey(prefix: string, userTag: string): string {
  return `${prefix}{${userTag}}:pk`;
}

/**
 * Returns the member under which observe.lua keeps a patient in the history: the first 16
 * bytes of the pseudonym's UTF-8 encoding, as Lua's `string.sub(pseudonym, 1, 16)` takes them.
 */
export function patientHistoryMember(pseudonym: string): Buffer {
  return Buffer.from(pseudonym, 'utf8').subarray(0, 16);
}

/** Script arguments of the user script, in the order observe.lua expects them. */
export function userArguments(observation: Observation, limits: SubjectLimits, extras: ObserveExtras): string[] {
  return [
    String(observation.hourOfWeek),
    observation.networkHash,
    observation.deviceHash,
    String(TTL_MS.minute),
    String(TTL_MS.hour),
    String(TTL_MS.day),
    String(TTL_MS.long),
    String(limits.networkCap),
    String(limits.deviceCap),
    String(limits.patientCap),
    String(limits.decayAtMinutes),
    extras.bulkExport === true ? '1' : '0',
    String(extras.outsideCare ?? 0),
    String(extras.flagged ?? 0),
    observation.routeHash,
    String(limits.routeCap),
    String(limits.historyCap),
    String(limits.historyWindowDays),
    String(observation.day),
    String(extras.notAdmitted ?? 0),
    observation.patients.map((_, index) => (extras.unexplained?.[index] === true ? '1' : '0')).join(''),
    ...observation.patients,
  ];
}

/** Redis keys of one peer group, in the order peer.lua expects them. */
export function peerKeys(prefix: string, observation: Observation): string[] {
  const base = `${prefix}{${observation.peerTag}}:`;

  return [
    `${base}s`,
    `${base}w`,
    `${base}n`,
    `${base}m:${observation.minute}`,
    `${base}h:${observation.hour}`,
    `${base}d:${observation.day}`,
    `${base}ph:${observation.hour}`,
    `${base}pd:${observation.day}`,
  ];
}

/** Script arguments of the peer script, in the order peer.lua expects them. */
export function peerArguments(observation: Observation, limits: SubjectLimits, unexplained: number): string[] {
  return [
    observation.member,
    String(observation.hourOfWeek),
    observation.networkHash,
    String(TTL_MS.minute),
    String(TTL_MS.hour),
    String(TTL_MS.day),
    String(TTL_MS.long),
    String(limits.networkCap),
    String(limits.patientCap),
    String(limits.decayAtMinutes),
    String(unexplained),
    ...observation.patients,
  ];
}

/** Redis keys of the response script: the user's stats hash and the hour's response hash. */
export function responseKeys(prefix: string, userTag: string, hour: number): string[] {
  const base = `${prefix}{${userTag}}:`;

  return [`${base}s`, `${base}r:${hour}`];
}

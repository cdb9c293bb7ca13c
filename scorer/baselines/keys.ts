import type { SubjectLimits } from './limits.ts';
import { TTL_MS } from './limits.ts';
import type { Observation } from './observation.ts';

/**
 * Redis keys of one subject, in the order observe.lua expects them. The `{tag}` hash tag
 * puts all keys of a subject into one Redis Cluster slot, which a Lua script requires.
 */
export function subjectKeys(prefix: string, tag: string, observation: Observation): string[] {
  const base = `${prefix}{${tag}}:`;

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
  ];
}

/** Script arguments of one subject, in the order observe.lua expects them. */
export function subjectArguments(observation: Observation, limits: SubjectLimits): string[] {
  return [
    observation.member,
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
    ...observation.patients,
  ];
}

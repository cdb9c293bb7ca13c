import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { ReviewEntry } from '../../proxy/review/entry.ts';

export const REDIS_URL = 'redis://127.0.0.1:6379';

/** Returns a fresh `wgtest:review:<random>:` prefix. */
export function testPrefix(): string {
  return `wgtest:review:${randomBytes(6).toString('hex')}:`;
}

/** Deletes every key under a test prefix. */
export async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

/** Builds a review entry with the given overrides. */
export function sampleEntry(overrides: Partial<ReviewEntry> = {}): ReviewEntry {
  return {
    kind: 'decision',
    time: Date.UTC(2026, 11, 4, 21, 0, 0),
    trace_id: randomBytes(16).toString('hex'),
    user: 'demo-nurse',
    groups: ['nurses'],
    route: 'ehr',
    method: 'GET',
    path: '/fhir/Patient/~00000000000000000000000000000000',
    action: 'step_up',
    rule: 'step-up-unusual',
    reasons: ['unusual'],
    risk: 0.82,
    top_features: [
      { name: 'new_ip', value: 1, contribution: 0.4 },
      { name: 'off_hours', value: 1, contribution: 0.2 },
    ],
    ...overrides,
  };
}

import { randomBytes } from 'node:crypto';

import { Redis } from 'ioredis';

import { BASELINE_REDIS_OPTIONS } from '../../scorer/baselines/redis-client.ts';
import type { ScoreInput } from '../../scorer/types.ts';

export const REDIS_URL = 'redis://127.0.0.1:6379';

/** A unique key prefix per test file, so parallel runs never share keys. */
export function testPrefix(area: string): string {
  return `wgtest:scorer:${area}:${randomBytes(4).toString('hex')}:`;
}

export async function connectTestRedis(): Promise<Redis> {
  const redis = new Redis(REDIS_URL, { ...BASELINE_REDIS_OPTIONS, lazyConnect: true });
  await redis.connect();

  return redis;
}

/** Returns all keys under `prefix`, found with SCAN. */
export async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');

  return keys.sort();
}

export async function deleteKeysUnder(redis: Redis, prefix: string): Promise<void> {
  const keys = await keysUnder(redis, prefix);
  for (const key of keys) {
    await redis.del(key);
  }
}

/** 2025-03-03 was a Monday. */
export const MONDAY = Date.UTC(2025, 2, 3);

export function request(overrides: Partial<ScoreInput> = {}): ScoreInput {
  return {
    user: 'dr.house@hospital.test',
    groups: ['staff', 'physicians', 'team-w1'],
    time: MONDAY + 9 * 3_600_000,
    ip: '10.20.1.17',
    userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Gecko/20100101 Firefox/133.0',
    method: 'GET',
    host: 'ehr.hospital.test',
    path: '/fhir/Encounter?location=w1',
    routeId: 'ehr-fhir',
    sensitivity: 'high',
    ...overrides,
  };
}

/** Environment with the secrets that {@link MINIMAL_CONFIG} names. */
export const CONFIG_ENV = Object.freeze({ WARDGATE_OIDC_CLIENT_SECRET: 'secret', WARDGATE_PATIENT_KEY: 'cd'.repeat(32) });

/** The smallest valid configuration file; it takes lines 1 to 7, so a section added after it starts on line 8. */
export const MINIMAL_CONFIG = `
tls: { cert: cert.pem, key: key.pem }
oidc: { issuer: https://idp.test, client_id: wardgate }
policy: policy.yaml
model: model.onnx
routes:
  - { id: ehr, upstream: http://127.0.0.1:9000 }
`;

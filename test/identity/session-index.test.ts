import { createHash, randomBytes } from 'node:crypto';

import { Redis } from 'ioredis';
import t from 'tap';

import { SessionStore, type SessionRecord } from '../../proxy/identity/session-store.ts';
import type { KeyValueStore } from '../../proxy/state/key-value-store.ts';
import { MemoryKeyValueStore } from '../../proxy/state/memory-key-value-store.ts';
import { RedisKeyValueStore } from '../../proxy/state/redis-key-value-store.ts';
import { deleteKeys, REDIS_URL } from './helpers.ts';

const prefix = `wgtest:session-index:${randomBytes(6).toString('hex')}:`;
const options = { idle_timeout_s: 900, absolute_lifetime_s: 3600 };
t.teardown(() => deleteKeys(prefix));

/** Two stores that share their data, as two Wardgate instances share one Redis. */
const implementations: [string, () => Promise<[KeyValueStore, KeyValueStore]>][] = [
  ['memory', async () => {
    const store = new MemoryKeyValueStore();
    return [store, store];
  }],
  ['redis', async () => [
    await RedisKeyValueStore.connect({ target: REDIS_URL, keyPrefix: prefix }),
    await RedisKeyValueStore.connect({ target: REDIS_URL, keyPrefix: prefix }),
  ]],
];

function record(subject: string, now: number, sid?: string): SessionRecord {
  return { subject, groups: [], created_at: now, absolute_expires_at: now + options.absolute_lifetime_s * 1000, elevations: [], ...(sid === undefined ? {} : { sid }) };
}

for (const [name, open] of implementations) {
  t.test(`${name} session indexes`, async (t) => {
    const [storeA, storeB] = await open();
    t.teardown(async () => {
      await storeA.close();
      if (storeB !== storeA) await storeB.close();
    });
    const instanceA = new SessionStore(storeA, options);
    const instanceB = new SessionStore(storeB, options);

    t.test('concurrent sign-ins are all revoked', async (t) => {
      const subject = `user-${randomBytes(4).toString('hex')}`;
      const now = Date.now();
      const ids = await Promise.all(Array.from({ length: 20 }, (_, index) => (index % 2 === 0 ? instanceA : instanceB).create(record(subject, now, 'idp-session-1'), now)));

      const revoked = await instanceA.revokeSubjectIds(subject);

      t.same([...revoked].sort(), [...ids].sort(), 'every session of the subject is revoked');
      t.same(await loadable(instanceB, ids), [], 'no session is left');
    });

    t.test('concurrent sign-ins of one sid are all revoked', async (t) => {
      const subject = `user-${randomBytes(4).toString('hex')}`;
      const sid = `idp-session-${randomBytes(4).toString('hex')}`;
      const now = Date.now();
      const ids = await Promise.all(Array.from({ length: 20 }, (_, index) => (index % 2 === 0 ? instanceA : instanceB).create(record(subject, now, sid), now)));
      const bystander = await instanceA.create(record(subject, now, 'another-idp-session'), now);

      const revoked = await instanceB.revokeSid(sid, subject);

      t.same([...revoked].sort(), [...ids].sort(), 'every session of the sid is revoked');
      t.same(await loadable(instanceA, [bystander]), [bystander], 'a session of another sid stays');
    });

    t.test('sign-in during revocation stays revocable', async (t) => {
      const subject = `user-${randomBytes(4).toString('hex')}`;
      const now = Date.now();
      await instanceA.create(record(subject, now), now);
      const [, late] = await Promise.all([instanceA.revokeSubjectIds(subject), instanceB.create(record(subject, now + 1), now + 1)]);

      const missed = await loadable(instanceA, [late]);
      const second = await instanceA.revokeSubjectIds(subject);

      t.same(second, missed, 'a session the first revocation missed is found by the next one');
    });

    t.test('index is bounded and prunes ended sessions first', async (t) => {
      const subject = `user-${randomBytes(4).toString('hex')}`;
      const now = Date.now();
      const ids: string[] = [];
      for (let index = 0; index < 50; index++) {
        ids.push(await instanceA.create(record(subject, now + index), now + index));
      }
      for (const id of ids.slice(10, 15)) {
        await instanceA.delete(id);
      }
      const newer: string[] = [];
      for (let index = 0; index < 5; index++) {
        newer.push(await instanceB.create(record(subject, now + 100 + index), now + 100 + index));
      }

      const revoked = await instanceB.revokeSubjectIds(subject);

      const expected = [...ids.slice(0, 10), ...ids.slice(15), ...newer];
      t.equal(revoked.length, 50, '50 live sessions fit in the index');
      t.same([...revoked].sort(), expected.sort(), 'ended sessions made room, so the oldest live ones stayed');

      const extra: string[] = [];
      for (let index = 0; index < 52; index++) {
        extra.push(await instanceA.create(record(subject, now + 200 + index), now + 200 + index));
      }
      t.same([...await instanceA.revokeSubjectIds(subject)].sort(), extra.slice(2).sort(), 'past 50 live sessions the oldest leave the index');
    });
  });
}

t.test('redis index expires with the absolute lifetime', async (t) => {
  const store = await RedisKeyValueStore.connect({ target: REDIS_URL, keyPrefix: prefix });
  const raw = new Redis(REDIS_URL);
  t.teardown(async () => {
    await store.close();
    raw.disconnect();
  });
  const subject = `user-${randomBytes(4).toString('hex')}`;
  const sid = `idp-session-${randomBytes(4).toString('hex')}`;
  const now = Date.now();
  await new SessionStore(store, options).create(record(subject, now, sid), now);

  for (const indexKey of [`session-index:subject:${sha256(subject)}`, `session-index:sid:${sha256(sid)}`]) {
    t.equal(await raw.type(`${prefix}${indexKey}`), 'zset', `${indexKey} is a sorted set`);
    const ttl = await raw.pttl(`${prefix}${indexKey}`);
    t.ok(ttl > 0 && ttl <= options.absolute_lifetime_s * 1000, `${indexKey} expires within the absolute lifetime, PTTL ${ttl}`);
  }
});

t.test('legacy JSON index is still revoked', async (t) => {
  const store = await RedisKeyValueStore.connect({ target: REDIS_URL, keyPrefix: prefix });
  t.teardown(() => store.close());
  const sessions = new SessionStore(store, options);
  const subject = `user-${randomBytes(4).toString('hex')}`;
  const now = Date.now();
  // A session written by an earlier version: the record, and its id in a JSON list.
  const legacyId = randomBytes(32).toString('base64url');
  await store.set(`session:${legacyId}`, JSON.stringify(record(subject, now)), 60_000);
  await store.set(`session-subject:${sha256(subject)}`, JSON.stringify([legacyId]), 60_000);
  const current = await sessions.create(record(subject, now), now);

  const revoked = await sessions.revokeSubjectIds(subject);

  t.same([...revoked].sort(), [legacyId, current].sort());
  t.equal(await store.get(`session-subject:${sha256(subject)}`), null, 'the legacy list is deleted');
});

/** Returns the ids among `ids` that still load as sessions. */
async function loadable(sessions: SessionStore, ids: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const id of ids) {
    if (await sessions.load(id, Date.now()) !== null) found.push(id);
  }
  return found;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

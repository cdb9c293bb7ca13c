import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';

import t from 'tap';

import { backchannelLogout, type LogoutContext } from '../../proxy/identity/logout.ts';
import type { OidcClient } from '../../proxy/identity/oidc-client.ts';
import type { SessionSockets } from '../../proxy/identity/session-sockets.ts';
import { SessionStore } from '../../proxy/identity/session-store.ts';
import type { KeyValueStore } from '../../proxy/state/key-value-store.ts';
import { MemoryKeyValueStore } from '../../proxy/state/memory-key-value-store.ts';
import { RedisKeyValueStore } from '../../proxy/state/redis-key-value-store.ts';
import { deleteKeys, REDIS_URL } from './helpers.ts';

const prefix = `wgtest:backchannel:${randomBytes(6).toString('hex')}:`;
const options = { idle_timeout_s: 900, absolute_lifetime_s: 3600 };
t.teardown(() => deleteKeys(prefix));

/** A recorded response: status, headers and body. */
interface Recorded {
  statusCode: number;
  readonly headers: Record<string, string>;
  body: string;
}

/**
 * Runs the back-channel logout handler on a form post carrying one logout token. The token's
 * signature is not what this test is about, so a stand-in client returns fixed claims for it.
 */
async function post(store: KeyValueStore, claims: { jti: string; sub: string }): Promise<Recorded> {
  const context: LogoutContext = {
    client: { verifyLogoutToken: async () => claims } as unknown as OidcClient,
    sessions: new SessionStore(store, options),
    sockets: { close: () => 0 } as unknown as SessionSockets,
    store,
    now: Date.now,
  };
  const req = Object.assign(Readable.from([Buffer.from('logout_token=stand-in')]), { headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  const recorded: Recorded = { statusCode: 0, headers: {}, body: '' };
  const res = {
    set statusCode(status: number) {
      recorded.statusCode = status;
    },
    setHeader: (name: string, value: string) => {
      recorded.headers[name] = value;
    },
    end: (body?: string) => {
      recorded.body = body ?? '';
    },
  };

  await backchannelLogout(context, req as unknown as IncomingMessage, res as unknown as ServerResponse);
  return recorded;
}

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

for (const [name, open] of implementations) {
  t.test(`${name}: concurrent copies of one logout token`, async (t) => {
    const [storeA, storeB] = await open();
    t.teardown(async () => {
      await storeA.close();
      if (storeB !== storeA) await storeB.close();
    });
    const claims = { jti: randomUUID(), sub: `user-${randomBytes(4).toString('hex')}` };

    const responses = await Promise.all(Array.from({ length: 10 }, (_, index) => post(index % 2 === 0 ? storeA : storeB, claims)));

    const accepted = responses.filter((response) => response.statusCode === 200);
    const rejected = responses.filter((response) => response.statusCode === 400);
    t.equal(accepted.length, 1, 'exactly one copy is accepted');
    t.equal(rejected.length, 9, 'every other copy is rejected');
    for (const response of rejected) {
      t.match(JSON.parse(response.body), { error: 'invalid_request', error_description: /claim "jti" was already used/ });
      t.equal(response.headers['cache-control'], 'no-store');
    }
    t.equal((await post(storeB, claims)).statusCode, 400, 'a later copy is rejected too');
    t.equal((await post(storeA, { ...claims, jti: randomUUID() })).statusCode, 200, 'a token with another jti is accepted');
  });
}

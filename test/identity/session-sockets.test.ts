import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

import { Redis } from 'ioredis';
import t, { type Test } from 'tap';

import { SESSION_EVENTS_CHANNEL } from '../../proxy/identity/session-events.ts';
import { SessionSockets } from '../../proxy/identity/session-sockets.ts';
import { SessionStore, type SessionRecord } from '../../proxy/identity/session-store.ts';
import { RedisKeyValueStore } from '../../proxy/state/redis-key-value-store.ts';
import { deleteKeys, REDIS_URL } from './helpers.ts';
import { waitUntil } from '../wait.ts';

const prefix = `wgtest:session-sockets:${randomBytes(6).toString('hex')}:`;
const options = { idle_timeout_s: 900, absolute_lifetime_s: 3600 };
t.teardown(() => deleteKeys(prefix));

interface Instance {
  readonly store: RedisKeyValueStore;
  readonly sessions: SessionStore;
  readonly sockets: SessionSockets;
}

/** Starts what one Wardgate instance holds: its own Redis connections, session store and socket registry. */
async function startInstance(t: Test, connectionName?: string): Promise<Instance> {
  const store = await RedisKeyValueStore.connect({ target: REDIS_URL, keyPrefix: prefix, ...(connectionName === undefined ? {} : { redis: { connectionName } }) });
  let sockets: SessionSockets | undefined;
  const sessions = new SessionStore(store, options, (ids) => sockets?.close(ids));
  // A re-check interval longer than any test, so that only the events or an explicit re-check close sockets.
  sockets = new SessionSockets({ store, liveIds: (ids) => sessions.liveIds(ids), recheckIntervalMs: 3_600_000 });
  await sockets.start();
  t.teardown(async () => {
    await sockets.stop();
    await store.close();
  });
  return { store, sessions, sockets };
}

function record(subject: string, sid?: string): SessionRecord {
  const now = Date.now();
  return { subject, groups: [], created_at: now, absolute_expires_at: now + options.absolute_lifetime_s * 1000, elevations: [], ...(sid === undefined ? {} : { sid }) };
}

/** Waits until `condition` holds; throws naming `what` after 30 seconds. */
async function waitFor(condition: () => boolean, what: string): Promise<void> {
  if (!(await waitUntil(condition))) throw new Error(`still waiting after 30 seconds until ${what}`);
}

t.test('session end closes sockets on another instance', async (t) => {
  const [a, b] = [await startInstance(t), await startInstance(t)];
  const id = await a.sessions.create(record('demo-nurse'), Date.now());
  const onB = new PassThrough();
  const onA = new PassThrough();
  b.sockets.add(id, onB);
  a.sockets.add(id, onA);

  // As sign-out does: delete the session, which publishes the event, then close the local sockets.
  await a.sessions.delete(id);
  a.sockets.close([id]);
  await waitFor(() => onB.destroyed, 'the socket on the other instance is destroyed');

  t.ok(onA.destroyed);
  t.equal(b.sockets.count(id), 0);
});

t.test('revocation from a separate process closes sockets everywhere', async (t) => {
  const [a, b] = [await startInstance(t), await startInstance(t)];
  const subject = `user-${randomBytes(4).toString('hex')}`;
  const first = await a.sessions.create(record(subject), Date.now());
  const second = await b.sessions.create(record(subject), Date.now());
  const bystander = await a.sessions.create(record('someone-else'), Date.now());
  const sockets = [new PassThrough(), new PassThrough(), new PassThrough()];
  a.sockets.add(first, sockets[0]);
  b.sockets.add(second, sockets[1]);
  b.sockets.add(bystander, sockets[2]);

  // The review CLI revokes through a SessionStore of its own, without a socket registry.
  const cliStore = await RedisKeyValueStore.connect({ target: REDIS_URL, keyPrefix: prefix });
  t.teardown(() => cliStore.close());
  t.equal(await new SessionStore(cliStore, options).revokeSubject(subject), 2);

  await waitFor(() => sockets[0].destroyed && sockets[1].destroyed, 'both sockets of the revoked user are destroyed');
  t.notOk(sockets[2].destroyed, 'the socket of another user stays open');
});

t.test('session rotation keeps sockets on another instance', async (t) => {
  const [a, b] = [await startInstance(t), await startInstance(t)];
  const oldId = await a.sessions.create(record('demo-nurse'), Date.now());
  const socket = new PassThrough();
  b.sockets.add(oldId, socket);

  const newId = await a.sessions.rotate(oldId, record('demo-nurse'), Date.now());
  await waitFor(() => b.sockets.count(newId) === 1, 'the socket is registered under the new id');
  t.equal(b.sockets.count(oldId), 0);
  t.notOk(socket.destroyed, 'a step-up does not close the socket');
  t.equal(await b.sockets.recheck(), 0, 'the re-check finds the new session alive');

  await a.sessions.delete(newId);
  await waitFor(() => socket.destroyed, 'the end of the new session destroys the socket');
  t.pass('the socket closed with the new session');
});

t.test('recheck closes sockets of ended sessions', async (t) => {
  const b = await startInstance(t);
  const raw = new Redis(REDIS_URL);
  t.teardown(() => raw.disconnect());
  const ended = await b.sessions.create(record('demo-nurse'), Date.now());
  const live = await b.sessions.create(record('demo-clerk'), Date.now());
  const endedSocket = new PassThrough();
  const liveSocket = new PassThrough();
  b.sockets.add(ended, endedSocket);
  b.sockets.add(live, liveSocket);

  // Deleted without an event, as when the message was lost or the session expired in Redis.
  await raw.del(`${prefix}session:${ended}`);
  t.notOk(endedSocket.destroyed, 'no event arrived');

  t.equal(await b.sockets.recheck(), 1);
  t.ok(endedSocket.destroyed, 'the socket of the deleted session is closed');
  t.notOk(liveSocket.destroyed, 'the socket of a live session stays open');
});

t.test('restored subscription rechecks sockets', async (t) => {
  const connectionName = `wgtest-${randomBytes(6).toString('hex')}`;
  const b = await startInstance(t, connectionName);
  const admin = new Redis(REDIS_URL);
  t.teardown(() => admin.disconnect());
  const id = await b.sessions.create(record('demo-nurse'), Date.now());
  const socket = new PassThrough();
  b.sockets.add(id, socket);

  // The session ends while the subscriber connection is down, so its event is lost.
  const subscriber = String(await admin.client('LIST')).split('\n').find((line) => line.includes(` name=${connectionName} `) && / sub=1 /.test(line));
  t.ok(subscriber, 'the subscriber connection is found');
  await admin.del(`${prefix}session:${id}`);
  await admin.client('KILL', 'ID', /(?:^| )id=(\d+)/.exec(subscriber!)![1]);

  await waitFor(() => socket.destroyed, 'the re-check after resubscribing destroys the socket');
  t.pass('the socket of the session that ended during the outage is closed');
});

t.test('malformed events close nothing', async (t) => {
  const b = await startInstance(t);
  const id = await b.sessions.create(record('demo-nurse'), Date.now());
  const socket = new PassThrough();
  b.sockets.add(id, socket);
  const publisher = new Redis(REDIS_URL);
  t.teardown(() => publisher.disconnect());

  for (const message of ['not json', JSON.stringify({ ended: id }), JSON.stringify({ ended: [id, 'short'] }), JSON.stringify({ renamed: { from: id, to: 'x' } }), JSON.stringify({ ended: [id], renamed: { from: id, to: id } })]) {
    await publisher.publish(`${prefix}${SESSION_EVENTS_CHANNEL}`, message);
  }
  // Messages on one channel arrive in order, so once this one closed its socket the others were handled.
  const marker = await b.sessions.create(record('demo-clerk'), Date.now());
  const markerSocket = new PassThrough();
  b.sockets.add(marker, markerSocket);
  await publisher.publish(`${prefix}${SESSION_EVENTS_CHANNEL}`, JSON.stringify({ ended: [marker] }));
  await waitFor(() => markerSocket.destroyed, 'the well-formed event is applied');

  t.notOk(socket.destroyed, 'no malformed event closed the socket');
  t.equal(b.sockets.count(id), 1);
});

import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { DEFAULT_OVERSIGHT_CONFIG } from '../../proxy/break-glass/config.ts';
import { Oversight } from '../../proxy/break-glass/oversight.ts';
import type { Principal } from '../../proxy/identity/principal.ts';
import { MemoryKeyValueStore } from '../../proxy/state/memory-key-value-store.ts';
import { waitUntil } from '../wait.ts';

const log = pino({ level: 'silent' });
const nurse: Principal = { subject: 'nurse-7', groups: ['nursing'], method: 'session' };

/** Builds an Oversight over a new in-process store, with a clock that moves only when the test moves it. */
function oversightWith(t: Test) {
  const store = new MemoryKeyValueStore();
  t.teardown(() => store.close());
  const clock = { now: 1_000_000 };
  const oversight = new Oversight({
    store,
    config: DEFAULT_OVERSIGHT_CONFIG,
    patientKey: Buffer.alloc(32, 5),
    identity: { sendStepUp: () => undefined },
    now: () => clock.now,
    logger: log,
  });
  return { oversight, clock, store };
}

async function grant(oversight: Oversight, expiresAt: number): Promise<void> {
  await oversight.store.saveGrant({ subject: nurse.subject, route: 'ehr', reason_code: 'emergency_care', trace_id: 'a'.repeat(32), expires_at: expiresAt }, 3_600_000);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

t.test('expired grant closes the socket', async (t) => {
  const { oversight, clock } = oversightWith(t);
  await grant(oversight, clock.now + 100);
  const socket = new PassThrough();

  oversight.closeAtGrantExpiry(nurse, 'ehr', socket, log);
  await sleep(300);
  t.equal(socket.destroyed, false, 'open while the clock has not reached the expiry');
  clock.now += 200;
  t.ok(await waitUntil(() => socket.destroyed), 'destroyed once the grant has expired');
});

t.test('renewed grant moves the deadline', async (t) => {
  const { oversight, clock } = oversightWith(t);
  await grant(oversight, clock.now + 100);
  const socket = new PassThrough();

  oversight.closeAtGrantExpiry(nurse, 'ehr', socket, log);
  await sleep(50);
  await grant(oversight, clock.now + 600);
  clock.now += 200;
  await sleep(300);
  t.equal(socket.destroyed, false, 'open after the first deadline under the renewed grant');
  clock.now += 500;
  t.ok(await waitUntil(() => socket.destroyed), 'destroyed at the renewed deadline');
});

t.test('failed grant lookup closes the socket', async (t) => {
  const { oversight, clock, store } = oversightWith(t);
  await grant(oversight, clock.now + 60_000);
  store.get = async () => {
    throw new Error('store unavailable');
  };
  const socket = new PassThrough();

  oversight.closeAtGrantExpiry(nurse, 'ehr', socket, log);
  t.ok(await waitUntil(() => socket.destroyed), 'destroyed, as a missing grant would be');
});

t.test('grant of another route does not keep the socket open', async (t) => {
  const { oversight, clock } = oversightWith(t);
  await grant(oversight, clock.now + 60_000);
  const socket = new PassThrough();

  oversight.closeAtGrantExpiry(nurse, 'pacs', socket, log);
  t.ok(await waitUntil(() => socket.destroyed), 'destroyed at once without a grant on its route');
});

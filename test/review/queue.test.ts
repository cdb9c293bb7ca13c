import { Redis } from 'ioredis';
import t from 'tap';
import { patternOf, pseudonymizePath } from '../../proxy/review/entry.ts';
import { ReviewError } from '../../proxy/review/errors.ts';
import { BenignPatterns, ReviewQueue } from '../../proxy/review/queue.ts';
import { PatientTargetPseudonymizer } from '../../proxy/patient-target.ts';
import { deletePrefix, REDIS_URL, sampleEntry, testPrefix } from './helpers.ts';
import { waitUntil } from '../wait.ts';

const redis = new Redis(REDIS_URL);
const prefix = testPrefix();
t.teardown(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

t.test('pending entries until labelled', async (t) => {
  const queue = new ReviewQueue(redis, { prefix: `${prefix}a:`, maxLength: 1000 });
  const first = await queue.add(sampleEntry({ user: 'demo-nurse' }));
  const second = await queue.add(sampleEntry({ user: 'demo-clerk' }));

  t.same((await queue.pending('cli-test')).map((item) => item.id), [first, second]);
  const { label } = await queue.label(first, 'misuse', 'looked up a neighbour', 'ana', 1000, 'cli-test');
  t.same(label, { entry_id: first, label: 'misuse', note: 'looked up a neighbour', analyst: 'ana', labelled_at: 1000 });
  t.same((await queue.pending('cli-test')).map((item) => item.id), [second]);
  t.equal((await queue.get(first)).label?.label, 'misuse');

  const groupPending = (await redis.xpending(queue.streamKey, 'analysts')) as [number, ...unknown[]];
  t.equal(groupPending[0], 1, 'the labelled entry is acknowledged in the consumer group');
});

t.test('label errors', async (t) => {
  const queue = new ReviewQueue(redis, { prefix: `${prefix}b:`, maxLength: 1000 });
  const id = await queue.add(sampleEntry());

  await t.rejects(queue.label('1-0', 'benign', 'fine', 'ana', 1, 'c'), { code: 'WG_REVIEW_ENTRY_NOT_FOUND', message: /Review entry "1-0" was not found in wgtest:review:\w+:b:review/ });
  await t.rejects(queue.label('abc', 'benign', 'fine', 'ana', 1, 'c'), { code: 'WG_REVIEW_ENTRY_NOT_FOUND', message: /is not a stream id/ });
  await t.rejects(queue.label(id, 'harmless' as 'benign', 'fine', 'ana', 1, 'c'), { code: 'WG_REVIEW_INVALID_LABEL', message: 'Label "harmless" is not valid; use benign or misuse.' });
  await t.rejects(queue.label(id, 'benign', '  ', 'ana', 1, 'c'), { code: 'WG_REVIEW_NOTE_MISSING' });
  await queue.label(id, 'benign', 'covering a colleague', 'ana', 1, 'c');
  await t.rejects(queue.label(id, 'misuse', 'second opinion', 'bob', 2, 'c'), { code: 'WG_REVIEW_ALREADY_LABELLED', message: /already labelled benign by ana/ });
});

t.test('stream length is bounded', async (t) => {
  const queue = new ReviewQueue(redis, { prefix: `${prefix}c:`, maxLength: 100 });
  for (let i = 0; i < 600; i++) await queue.add(sampleEntry());
  const length = await redis.xlen(queue.streamKey);
  t.ok(length < 600, `trimmed to ${length} entries`);
  t.ok(length >= 100, 'keeps at least the maximum');
});

t.test('enqueue survives a Redis outage', async (t) => {
  const dead = new Redis('redis://127.0.0.1:1', { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
  dead.on('error', () => {});
  const logged: unknown[] = [];
  const logger = { error: (...args: unknown[]) => logged.push(args) } as unknown as import('pino').Logger;
  const queue = new ReviewQueue(dead, { prefix: `${prefix}d:`, maxLength: 100, logger });

  t.doesNotThrow(() => queue.enqueue(sampleEntry()));
  t.doesNotThrow(() => queue.enqueue(sampleEntry()));
  while (queue.failures < 2) await new Promise((resolve) => setImmediate(resolve));
  t.equal(queue.failures, 2);
  t.equal(logged.length, 1, 'the first failure is logged, repeats are only counted');
  dead.disconnect();
});

t.test('decision entries limited per user hour', async (t) => {
  const warnings: unknown[] = [];
  const logger = { warn: (...args: unknown[]) => warnings.push(args), error: () => {} } as unknown as import('pino').Logger;
  const queue = new ReviewQueue(redis, { prefix: `${prefix}f:`, maxLength: 1000, maxEntriesPerUserHour: 3, logger });
  const hour = Date.UTC(2026, 11, 5, 10);

  for (let i = 0; i < 6; i++) queue.enqueue(sampleEntry({ user: 'flooder', time: hour + i, trace_id: `flood-${i}` }));
  queue.enqueue(sampleEntry({ user: 'colleague', time: hour + 10, trace_id: 'colleague-0' }));
  queue.enqueue(sampleEntry({ kind: 'break_glass', action: 'break_glass', user: 'flooder', time: hour + 20, trace_id: 'claim-0' }));
  queue.enqueue(sampleEntry({ user: 'flooder', time: hour + 3_600_000, trace_id: 'next-hour-0' }));
  t.ok(await waitUntil(async () => (await redis.xlen(queue.streamKey)) === 6 && queue.limitedEntries === 3), 'six entries written and three limited');

  const entries = (await queue.pending('cli-test')).map(({ entry }) => entry);
  t.same(entries.map((entry) => entry.trace_id).sort(), ['claim-0', 'colleague-0', 'flood-0', 'flood-1', 'flood-2', 'next-hour-0'], 'three of the flood, the claim, the colleague and the next hour are queued');
  t.equal(entries.find((entry) => entry.trace_id === 'flood-2')?.user_hour_limit, 3, 'the entry that reaches the limit says so');
  t.equal(entries.find((entry) => entry.trace_id === 'flood-1')?.user_hour_limit, undefined);
  t.equal(queue.limitedEntries, 3);
  t.equal(warnings.length, 1, 'the limit is logged once per user hour');

  const keys = await redis.keys(`${prefix}f:review:count:*`);
  t.equal(keys.filter((key) => !key.endsWith(':marked')).length, 3, 'one counter per user and hour');
  t.equal(keys.filter((key) => key.endsWith(':marked')).length, 1, 'one marker per user hour at the limit');
  for (const key of keys) {
    const ttl = await redis.ttl(key);
    t.ok(ttl > 0 && ttl <= 7200, `${key} expires within 2 hours`);
  }
});

t.test('claim at the limit leaves the marker', async (t) => {
  const queue = new ReviewQueue(redis, { prefix: `${prefix}i:`, maxLength: 1000, maxEntriesPerUserHour: 3 });
  const hour = Date.UTC(2026, 11, 5, 12);
  const send = (overrides: Parameters<typeof sampleEntry>[0]) => queue.enqueue(sampleEntry({ user: 'flooder', ...overrides }));

  send({ time: hour, trace_id: 'low-0' });
  send({ time: hour + 1, trace_id: 'low-1' });
  t.ok(await waitUntil(async () => (await redis.xlen(queue.streamKey)) === 2));
  send({ kind: 'break_glass', action: 'break_glass', time: hour + 2, trace_id: 'claim-0' });
  t.ok(await waitUntil(async () => (await redis.xlen(queue.streamKey)) === 3), 'the claim takes the third count');
  send({ time: hour + 3, trace_id: 'low-2' });
  send({ time: hour + 4, trace_id: 'low-3' });
  t.ok(await waitUntil(() => queue.limitedEntries === 1), 'one decision past the limit is dropped');

  const entries = (await queue.pending('cli-test')).map(({ entry }) => entry);
  t.same(entries.map((entry) => entry.trace_id), ['low-0', 'low-1', 'claim-0', 'low-2']);
  t.equal(entries.find((entry) => entry.trace_id === 'claim-0')?.user_hour_limit, undefined, 'a claim never carries the marker');
  t.equal(entries.find((entry) => entry.trace_id === 'low-2')?.user_hour_limit, 3, 'the next decision carries it');
});

t.test('exempt entries pass the user hour limit', async (t) => {
  const queue = new ReviewQueue(redis, { prefix: `${prefix}g:`, maxLength: 1000, maxEntriesPerUserHour: 2 });
  const hour = Date.UTC(2026, 11, 5, 11);

  for (let i = 0; i < 3; i++) queue.enqueue(sampleEntry({ user: 'flooder', time: hour + i, risk: 0.1, trace_id: `low-${i}` }));
  t.ok(await waitUntil(() => queue.limitedEntries === 1), 'the third low-risk entry is limited');
  queue.enqueue(sampleEntry({ user: 'flooder', time: hour + 10, risk: 0.99, trace_id: 'risky-0' }), { exemptFromUserLimit: true });
  t.ok(await waitUntil(async () => (await redis.xlen(queue.streamKey)) === 3), 'the exempt entry is written');

  const ids = (await queue.pending('cli-test')).map(({ entry }) => entry.trace_id);
  t.same(ids, ['low-0', 'low-1', 'risky-0']);
  t.equal(queue.limitedEntries, 1);
});

t.test('limited enqueue survives a Redis outage', async (t) => {
  const dead = new Redis('redis://127.0.0.1:1', { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
  dead.on('error', () => {});
  const queue = new ReviewQueue(dead, { prefix: `${prefix}h:`, maxLength: 100, maxEntriesPerUserHour: 10 });

  t.doesNotThrow(() => queue.enqueue(sampleEntry()));
  t.doesNotThrow(() => queue.enqueue(sampleEntry({ kind: 'break_glass', action: 'break_glass' })));
  t.ok(await waitUntil(() => queue.failures === 2), 'both failed writes are counted');
  t.equal(queue.limitedEntries, 0);
  dead.disconnect();
});

t.test('invalid max_entries_per_user_hour', async (t) => {
  t.throws(() => new ReviewQueue(redis, { prefix, maxLength: 100, maxEntriesPerUserHour: 0 }), new ReviewError('WG_REVIEW_INVALID_OPTION', 'Option review.max_entries_per_user_hour must be a positive integer, received 0.'));
});

t.test('invalid stream_max_length', async (t) => {
  t.throws(() => new ReviewQueue(redis, { prefix, maxLength: 0 }), new ReviewError('WG_REVIEW_INVALID_OPTION', 'Option review.stream_max_length must be a positive integer, received 0.'));
});

t.test('benign patterns per user', async (t) => {
  const patterns = new BenignPatterns(redis, `${prefix}e:`);
  const pattern = patternOf('ehr', [{ name: 'off_hours' }, { name: 'new_ip' }]);
  t.equal(pattern, 'ehr|new_ip,off_hours', 'feature order does not matter');
  await patterns.accept('demo-nurse', pattern, 60, { entry_id: '1-0', label: 'benign', note: 'n', analyst: 'a', labelled_at: 0 });

  t.equal(await patterns.isAccepted('demo-nurse', pattern), true);
  t.equal(await patterns.isAccepted('demo-clerk', pattern), false);
  t.equal(await patterns.isAccepted('demo-nurse', 'ehr|new_ip'), false);
});

t.test('paths are pseudonymised', async (t) => {
  const pseudonymizer = new PatientTargetPseudonymizer(Buffer.alloc(32, 7));
  const p1 = pseudonymizer.pseudonym('p-0001');
  const p2 = pseudonymizer.pseudonym('p-0002');

  t.same(pseudonymizePath('/fhir/Patient/p-0001', pseudonymizer), { path: `/fhir/Patient/~${p1}`, patients: [p1] });
  t.equal(pseudonymizePath('/fhir/Patient/p-0001/$everything', pseudonymizer).path, `/fhir/Patient/~${p1}/$everything`);
  t.same(pseudonymizePath('/fhir/Observation?patient=Patient/p-0001,p-0002&code=8867-4', pseudonymizer), { path: `/fhir/Observation?patient=Patient/~${p1},~${p2}&code=_`, patients: [p1, p2] });
  t.equal(pseudonymizePath('/fhir/Patient?name=smith', pseudonymizer).path, '/fhir/Patient?name=_', 'other query values are dropped');
  t.equal(pseudonymizePath('/fhir/Patient/bad id!', pseudonymizer).path, '/fhir/Patient/~redacted');
});

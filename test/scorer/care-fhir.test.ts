import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';

import { handleFhirRequest } from '../../demo/app/fhir-api.ts';
import { generateDemoDataset } from '../../demo/app/patients.ts';
import { startDemoApp } from '../../demo/app/server.ts';
import { RedisKeyValueStore } from '../../proxy/state/redis-key-value-store.ts';
import { createFhirCareSource } from '../../scorer/care/fhir-source.ts';
import { PatientPseudonymizer } from '../../scorer/features/patient.ts';
import { connectTestRedis, deleteKeysUnder, keysUnder, testPrefix } from './helpers.ts';

const pseudonymizer = new PatientPseudonymizer(Buffer.alloc(32, 9));
const TIME = Date.UTC(2025, 0, 20, 9);
const ids = (first: number, last: number) => Array.from({ length: last - first + 1 }, (_, i) => `p-${String(first + i).padStart(4, '0')}`);
const pseudonyms = (list: string[]) => new Set(list.map((id) => pseudonymizer.pseudonymize(id)));
/** The demo discharged every fifth patient, so p-0005, p-0010, ... have no encounter in progress. */
const inDemoCensus = (id: string) => Number(id.slice(2)) % 5 !== 0;

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Serves the demo FHIR API behind a switch that makes it return 503, hang or work. */
async function switchableFhir(t: Test) {
  const dataset = generateDemoDataset();
  const state = { mode: 'up' as 'up' | 'down' | 'hang', requests: 0, urls: [] as string[] };
  const server = createServer((req, res) => {
    state.requests++;
    state.urls.push(req.url ?? '');
    if (state.mode === 'down') return void res.writeHead(503).end();
    if (state.mode === 'hang') return;
    handleFhirRequest(dataset, req, res, new URL(req.url ?? '/', 'http://fhir.invalid'));
  });
  const url = await listen(server);
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });

  return { base: `${url}/fhir`, state };
}

t.test('FHIR source reads care teams, encounters and appointments', async (t) => {
  const app = await startDemoApp({ port: 0 });
  t.teardown(() => app.close());
  const source = createFhirCareSource({ fhirBase: `${app.url}/fhir`, pseudonymizer, ttlSeconds: 60 });

  t.same(await source.careSet('demo-physician', TIME), pseudonyms(ids(1, 25)), 'care team p-0001..p-0020 and encounters p-0021..p-0025');
  t.same(await source.careSet('demo-nurse', TIME), pseudonyms([...ids(1, 10), ...ids(30, 32)]), 'care team and appointments');
  t.equal(await source.careSet('demo-clerk', TIME), null, 'a user without a Practitioner resource is unknown');
  t.equal(await source.careSet('not a fhir id', TIME), null);
});

t.test('FHIR source reads patient flags from meta.security', async (t) => {
  const app = await startDemoApp({ port: 0 });
  t.teardown(() => app.close());
  const source = createFhirCareSource({ fhirBase: `${app.url}/fhir`, pseudonymizer, ttlSeconds: 60 });

  t.same(await source.patientFlags(pseudonymizer.pseudonymize('p-0007')), { vip: true, employee: false });
  t.same(await source.patientFlags(pseudonymizer.pseudonymize('p-0013')), { vip: false, employee: true });
  t.same(await source.patientFlags(pseudonymizer.pseudonymize('p-0001')), { vip: false, employee: false });
});

t.test('FHIR source caches care sets in Redis per user', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('care');
  const cache = await RedisKeyValueStore.connect({ url: 'redis://127.0.0.1:6379', keyPrefix: prefix });
  t.teardown(async () => {
    await deleteKeysUnder(redis, prefix);
    await cache.close();
    await redis.quit();
  });
  const fhir = await switchableFhir(t);

  const first = createFhirCareSource({ fhirBase: fhir.base, pseudonymizer, ttlSeconds: 60, cache });
  const expected = await first.careSet('demo-physician', TIME);
  t.same(expected, pseudonyms(ids(1, 25)));
  t.same(await keysUnder(redis, prefix), [`${prefix}care:{demo-physician}`]);
  t.ok((await redis.pttl(`${prefix}care:{demo-physician}`)) > 50_000, 'the key expires after the TTL');

  const requests = fhir.state.requests;
  fhir.state.mode = 'down';
  t.same(await first.careSet('demo-physician', TIME), expected, 'in-process cache');
  const second = createFhirCareSource({ fhirBase: fhir.base, pseudonymizer, ttlSeconds: 60, cache });
  t.same(await second.careSet('demo-physician', TIME), expected, 'another instance reads the shared cache');
  t.equal(fhir.state.requests, requests, 'no FHIR request while cached');
});

t.test('FHIR outage gives null and is reported once', async (t) => {
  const fhir = await switchableFhir(t);
  let clock = TIME;
  const outages: Error[] = [];
  let recoveries = 0;
  const source = createFhirCareSource({
    fhirBase: fhir.base, pseudonymizer, ttlSeconds: 60, localTtlMs: 0, retryAfterMs: 1000, now: () => clock,
    onOutage: (error) => outages.push(error), onRecovered: () => recoveries++,
  });

  fhir.state.mode = 'down';
  t.equal(await source.careSet('demo-physician', TIME), null);
  t.equal(await source.careSet('demo-nurse', TIME), null);
  t.equal(outages.length, 1, 'one report per outage');
  t.match(outages[0]!, { code: 'WG_CARE_FETCH_FAILED', message: /FHIR request \/fhir\/Practitioner\/demo-physician failed: status 503/ });
  t.same(await source.patientFlags(pseudonymizer.pseudonymize('p-0007')), { vip: false, employee: false }, 'no flags known during the outage');

  const requests = fhir.state.requests;
  t.equal(await source.careSet('demo-physician', TIME), null);
  t.equal(fhir.state.requests, requests, 'no request before retryAfterMs has passed');

  fhir.state.mode = 'up';
  clock += 1001;
  t.same(await source.careSet('demo-physician', TIME), pseudonyms(ids(1, 25)));
  t.equal(recoveries, 1);
  t.equal(outages.length, 1);
});

t.test('FHIR census maps in-progress encounters to pseudonyms', async (t) => {
  const fhir = await switchableFhir(t);
  const source = createFhirCareSource({ fhirBase: fhir.base, pseudonymizer, ttlSeconds: 60 });

  for (const id of ids(1, 200)) {
    t.equal(await source.inEncounter!(pseudonymizer.pseudonymize(id), TIME), inDemoCensus(id), `${id} ${inDemoCensus(id) ? 'in hospital' : 'discharged'}`);
  }
  t.equal(await source.inEncounter!(pseudonymizer.pseudonymize('p-0201'), TIME), false, 'a patient the server does not know');
  t.equal(await source.inEncounter!(pseudonymizer.pseudonymize('p-0001'), Date.UTC(2020, 0, 1)), true, 'the request time is ignored');

  const search = new URL(fhir.state.urls[0]!, 'http://fhir.invalid');
  t.equal(search.pathname, '/fhir/Encounter');
  t.same(Object.fromEntries(search.searchParams), { status: 'in-progress', _elements: 'subject', _count: '100' });
  t.equal(fhir.state.requests, 2, '164 encounters in two pages of 100, read once for all lookups');
});

t.test('FHIR census follows paging and skips invalid entries', async (t) => {
  const urls: string[] = [];
  const page1 = {
    resourceType: 'Bundle', type: 'searchset',
    link: [{ relation: 'next', url: '/fhir/Encounter?status=in-progress&page=2' }],
    entry: [
      { resource: { resourceType: 'Encounter', id: 'e1', status: 'in-progress', subject: { reference: 'Patient/a-1' } } },
      { resource: { resourceType: 'Encounter', id: 'e2', status: 'in-progress', subject: { reference: 'Group/ward-3' } } },
      { resource: { resourceType: 'Encounter', id: 'e3', status: 'in-progress', subject: { reference: 'Patient/bad id!' } } },
    ],
  };
  const page2 = {
    resourceType: 'Bundle', type: 'searchset',
    entry: [
      { resource: { resourceType: 'Encounter', id: 'e4', subject: { reference: 'https://ehr.hospital.test/fhir/Patient/b-2' } } },
      { resource: { resourceType: 'Encounter', id: 'e5', status: 'finished', subject: { reference: 'Patient/c-3' } } },
      { resource: { resourceType: 'Patient', id: 'd-4', subject: { reference: 'Patient/d-4' } } },
    ],
  };
  const server = createServer((req, res) => {
    urls.push(req.url ?? '');
    const body = JSON.stringify(new URL(req.url ?? '/', 'http://fhir.invalid').searchParams.get('page') === '2' ? page2 : page1);
    res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(body);
  });
  const url = await listen(server);
  t.teardown(() => server.close());
  const source = createFhirCareSource({ fhirBase: `${url}/fhir`, pseudonymizer, ttlSeconds: 60 });
  const lookup = (id: string) => source.inEncounter!(pseudonymizer.pseudonymize(id), TIME);

  t.equal(await lookup('a-1'), true, 'patient on the first page');
  t.equal(await lookup('b-2'), true, 'patient on the second page, absolute reference, no status element');
  t.equal(await lookup('c-3'), false, 'an Encounter with another status is skipped');
  t.equal(await lookup('d-4'), false, 'a resource that is not an Encounter is skipped');
  t.equal(await lookup('bad id!'), false, 'a patient id that is not a FHIR id is skipped');
  t.equal(await lookup('ward-3'), false, 'a subject that is not a Patient is skipped');
  t.same(urls, ['/fhir/Encounter?status=in-progress&_elements=subject&_count=100', '/fhir/Encounter?status=in-progress&page=2']);
});

t.test('FHIR source caches the census in Redis', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('census');
  const cache = await RedisKeyValueStore.connect({ url: 'redis://127.0.0.1:6379', keyPrefix: prefix });
  t.teardown(async () => {
    await deleteKeysUnder(redis, prefix);
    await cache.close();
    await redis.quit();
  });
  const fhir = await switchableFhir(t);

  const first = createFhirCareSource({ fhirBase: fhir.base, pseudonymizer, ttlSeconds: 60, cache });
  t.equal(await first.inEncounter!(pseudonymizer.pseudonymize('p-0001'), TIME), true);
  t.same(await keysUnder(redis, prefix), [`${prefix}care:census`]);
  t.ok((await redis.pttl(`${prefix}care:census`)) > 50_000, 'the key expires after the TTL');
  const stored = (await redis.get(`${prefix}care:census`))!;
  t.same(new Set(JSON.parse(stored)), pseudonyms(ids(1, 200).filter(inDemoCensus)), 'the stored census is the set of pseudonyms');
  t.notMatch(stored, /p-\d{4}/, 'no patient id is stored in clear');

  const requests = fhir.state.requests;
  fhir.state.mode = 'down';
  const second = createFhirCareSource({ fhirBase: fhir.base, pseudonymizer, ttlSeconds: 60, cache });
  t.equal(await second.inEncounter!(pseudonymizer.pseudonymize('p-0001'), TIME), true, 'another instance reads the shared cache');
  t.equal(await second.inEncounter!(pseudonymizer.pseudonymize('p-0005'), TIME), false);
  t.equal(fhir.state.requests, requests, 'no FHIR request while cached');
});

t.test('FHIR census ignores an unreadable shared value', async (t) => {
  const fhir = await switchableFhir(t);
  const writes: string[] = [];
  const cache = { get: async () => '{"not":"a list"', set: async (key: string) => void writes.push(key) };
  const source = createFhirCareSource({ fhirBase: fhir.base, pseudonymizer, ttlSeconds: 60, cache });

  t.equal(await source.inEncounter!(pseudonymizer.pseudonymize('p-0001'), TIME), true);
  t.equal(fhir.state.requests, 2, 'the census is read from FHIR');
  t.same(writes, ['care:census'], 'and written back');
});

t.test('FHIR source sends one census search at a time', async (t) => {
  const fhir = await switchableFhir(t);
  const source = createFhirCareSource({ fhirBase: fhir.base, pseudonymizer, ttlSeconds: 60 });

  const lookups = ids(1, 20);
  const results = await Promise.all(lookups.map((id) => source.inEncounter!(pseudonymizer.pseudonymize(id), TIME)));
  t.same(results, lookups.map(inDemoCensus));
  t.equal(fhir.state.requests, 2, 'one search of two pages for 20 concurrent lookups');
});

t.test('FHIR outage keeps the last census', async (t) => {
  const fhir = await switchableFhir(t);
  let clock = TIME;
  const outages: Error[] = [];
  let recoveries = 0;
  const source = createFhirCareSource({
    fhirBase: fhir.base, pseudonymizer, ttlSeconds: 60, localTtlMs: 0, retryAfterMs: 1000, now: () => clock,
    onOutage: (error) => outages.push(error), onRecovered: () => recoveries++,
  });
  const lookup = (id: string) => source.inEncounter!(pseudonymizer.pseudonymize(id), TIME);

  fhir.state.mode = 'down';
  t.equal(await lookup('p-0001'), null, 'unknown before any census was read');
  t.equal(outages.length, 1);
  t.match(outages[0]!, { code: 'WG_CARE_FETCH_FAILED', message: /FHIR request \/fhir\/Encounter failed: status 503/ });

  fhir.state.mode = 'up';
  clock += 1001;
  t.equal(await lookup('p-0001'), true);
  t.equal(recoveries, 1);

  fhir.state.mode = 'down';
  clock += 1;
  t.equal(await lookup('p-0001'), true, 'the last census stays in use');
  t.equal(await lookup('p-0005'), false);
  t.equal(outages.length, 2, 'the new outage is reported');

  const requests = fhir.state.requests;
  t.equal(await lookup('p-0002'), true);
  t.equal(fhir.state.requests, requests, 'no request before retryAfterMs has passed');
});

t.test('FHIR source times out on a hanging server', async (t) => {
  const fhir = await switchableFhir(t);
  fhir.state.mode = 'hang';
  const outages: Error[] = [];
  const source = createFhirCareSource({ fhirBase: fhir.base, pseudonymizer, ttlSeconds: 60, timeoutMs: 100, onOutage: (error) => outages.push(error) });

  t.equal(await source.careSet('demo-physician', TIME), null);
  t.match(outages[0]!, { code: 'WG_CARE_FETCH_FAILED', message: /timed out after 100 ms/ });
});

t.test('FHIR source rejects invalid options', async (t) => {
  t.throws(() => createFhirCareSource({ fhirBase: 'ftp://x', pseudonymizer, ttlSeconds: 60 }), { code: 'WG_CARE_INVALID_OPTION', message: /Invalid option fhirBase: expected an http:\/\/ or https:\/\/ URL/ });
  t.throws(() => createFhirCareSource({ fhirBase: 'http://127.0.0.1/fhir', pseudonymizer, ttlSeconds: 0 }), { code: 'WG_CARE_INVALID_OPTION', message: /Invalid option ttlSeconds/ });
  t.throws(() => createFhirCareSource({ fhirBase: 'http://127.0.0.1/fhir', pseudonymizer, ttlSeconds: 5, timeoutMs: -1 }), { code: 'WG_CARE_INVALID_OPTION', message: /Invalid option timeoutMs/ });
});

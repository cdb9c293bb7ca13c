import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';

import { handleFhirRequest } from '../../demo/app/fhir-api.ts';
import { generateDemoDataset } from '../../demo/app/patients.ts';
import { startDemoApp } from '../../demo/app/server.ts';
import { RedisKeyValueStore } from '../../proxy/state/redis-key-value-store.ts';
import { MAX_SEARCH_PAGES } from '../../scorer/care/fhir-client.ts';
import { ACT_CODE_SYSTEM, VIP_CODE, createFhirCareSource } from '../../scorer/care/fhir-source.ts';
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

/**
 * Polls `condition` every 10 ms and returns whether it came true. The 10 s bound only detects
 * a hang, because a pass takes milliseconds.
 */
async function waitUntil(condition: () => boolean | Promise<boolean>, what: string): Promise<boolean> {
  for (let waited = 0; waited < 10_000; waited += 10) {
    if (await condition()) return true;
    await sleep(10);
  }

  console.error(`Still waiting after 10 s: ${what}.`);
  return false;
}

/** Builds a FHIR searchset Bundle of `resources`, with a `next` link when one is given. */
function searchset(resources: object[], next?: string) {
  return {
    resourceType: 'Bundle', type: 'searchset',
    link: next === undefined ? [] : [{ relation: 'next', url: next }],
    entry: resources.map((resource) => ({ resource })),
  };
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

/**
 * Serves the census (`Encounter` search) and the flagged patients (`Patient` search) from lists
 * that a test changes. While `hold` is set, responses wait until `release` is called.
 */
async function heldFhir(t: Test) {
  const state = { census: [] as string[], vips: [] as string[], hold: false, requests: 0, held: [] as Array<() => void> };
  const server = createServer((req, res) => {
    state.requests++;
    const path = new URL(req.url ?? '/', 'http://fhir.invalid').pathname;
    const send = () => {
      const resources = path === '/fhir/Encounter'
        ? state.census.map((id) => ({ resourceType: 'Encounter', id: `e-${id}`, status: 'in-progress', subject: { reference: `Patient/${id}` } }))
        : state.vips.map((id) => ({ resourceType: 'Patient', id, meta: { security: [{ system: ACT_CODE_SYSTEM, code: VIP_CODE }] } }));
      res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(searchset(resources)));
    };
    if (state.hold) state.held.push(send);
    else send();
  });
  const url = await listen(server);
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const release = () => {
    state.hold = false;
    for (const send of state.held.splice(0)) send();
  };

  return { base: `${url}/fhir`, state, release };
}

/**
 * Serves a search that never ends: each page links to the next and is sent after 100 ms.
 * `aborted` counts requests that the client closed before their page was sent.
 */
async function slowPagingFhir(t: Test) {
  const state = { pages: 0, aborted: 0 };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://fhir.invalid');
    if (url.pathname.startsWith('/fhir/Practitioner/')) {
      return void res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(JSON.stringify({ resourceType: 'Practitioner', id: 'dr-1' }));
    }

    state.pages++;
    const page = Number(url.searchParams.get('page') ?? 1);
    const next = new URL(url);
    next.searchParams.set('page', String(page + 1));
    // From the fourth page on the server sends no response, so a page is still pending when the
    // 500 ms deadline passes, however slowly the first pages went on a loaded machine.
    const delay = page < 4 ? 100 : 60_000;
    const timer = setTimeout(() => res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(searchset([], `${next.pathname}${next.search}`))), delay);
    res.on('close', () => {
      if (res.writableEnded) return;
      clearTimeout(timer);
      state.aborted++;
    });
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
  const cache = await RedisKeyValueStore.connect({ target: 'redis://127.0.0.1:6379', keyPrefix: prefix });
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
  const page2 = (base: string) => ({
    resourceType: 'Bundle', type: 'searchset',
    entry: [
      { resource: { resourceType: 'Encounter', id: 'e4', subject: { reference: `${base}/Patient/b-2` } } },
      { resource: { resourceType: 'Encounter', id: 'e5', status: 'finished', subject: { reference: 'Patient/c-3' } } },
      { resource: { resourceType: 'Patient', id: 'd-4', subject: { reference: 'Patient/d-4' } } },
    ],
  });
  const server = createServer((req, res) => {
    urls.push(req.url ?? '');
    const body = JSON.stringify(new URL(req.url ?? '/', 'http://fhir.invalid').searchParams.get('page') === '2' ? page2(`${url}/fhir`) : page1);
    res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(body);
  });
  const url = await listen(server);
  t.teardown(() => server.close());
  const source = createFhirCareSource({ fhirBase: `${url}/fhir`, pseudonymizer, ttlSeconds: 60 });
  const lookup = (id: string) => source.inEncounter!(pseudonymizer.pseudonymize(id), TIME);

  t.equal(await lookup('a-1'), true, 'patient on the first page');
  t.equal(await lookup('b-2'), true, 'patient on the second page, absolute reference to this server, no status element');
  t.equal(await lookup('c-3'), false, 'an Encounter with another status is skipped');
  t.equal(await lookup('d-4'), false, 'a resource that is not an Encounter is skipped');
  t.equal(await lookup('bad id!'), false, 'a patient id that is not a FHIR id is skipped');
  t.equal(await lookup('ward-3'), false, 'a subject that is not a Patient is skipped');
  t.same(urls, ['/fhir/Encounter?status=in-progress&_elements=subject&_count=100', '/fhir/Encounter?status=in-progress&page=2']);
});

t.test('FHIR source caches the census in Redis', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('census');
  const cache = await RedisKeyValueStore.connect({ target: 'redis://127.0.0.1:6379', keyPrefix: prefix });
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
  t.ok(await waitUntil(() => outages.length === 2, 'the background refresh reports the new outage'), 'the new outage is reported');

  const requests = fhir.state.requests;
  t.equal(await lookup('p-0002'), true);
  // A refresh that did send a request would reach the server within this pause.
  await sleep(100);
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

t.test('FHIR care set lookup stops at the overall deadline', async (t) => {
  const fhir = await slowPagingFhir(t);
  const outages: Error[] = [];
  const source = createFhirCareSource({ fhirBase: fhir.base, pseudonymizer, ttlSeconds: 60, searchTimeoutMs: 500, onOutage: (error) => outages.push(error) });

  t.equal(await source.careSet('dr-1', TIME), null, 'unknown once the deadline has passed');
  t.match(outages[0]!, { code: 'WG_CARE_FETCH_FAILED', message: /^FHIR request \/fhir\/(CareTeam|Encounter|Appointment) failed: timed out: the lookup took longer than its overall deadline of 500 ms\.$/ });
  t.ok(fhir.state.pages < MAX_SEARCH_PAGES, `${fhir.state.pages} pages requested, fewer than one search of ${MAX_SEARCH_PAGES} pages`);
  t.ok(await waitUntil(() => fhir.state.aborted > 0, 'the server sees a pending page aborted'), 'the pending page requests are aborted');
});

t.test('FHIR census first load stops at the overall deadline', async (t) => {
  const fhir = await slowPagingFhir(t);
  const outages: Error[] = [];
  const source = createFhirCareSource({ fhirBase: fhir.base, pseudonymizer, ttlSeconds: 60, searchTimeoutMs: 500, onOutage: (error) => outages.push(error) });

  t.equal(await source.inEncounter!(pseudonymizer.pseudonymize('p-0001'), TIME), null, 'unknown once the deadline has passed');
  t.match(outages[0]!, { code: 'WG_CARE_FETCH_FAILED', message: 'FHIR request /fhir/Encounter failed: timed out: the lookup took longer than its overall deadline of 500 ms.' });
  t.ok(fhir.state.pages < MAX_SEARCH_PAGES, `${fhir.state.pages} pages requested, fewer than ${MAX_SEARCH_PAGES}`);
  t.ok(await waitUntil(() => fhir.state.aborted > 0, 'the server sees the pending page aborted'), 'the pending page request is aborted');
});

t.test('FHIR census returns stale data during refresh', async (t) => {
  const fhir = await heldFhir(t);
  let clock = TIME;
  const source = createFhirCareSource({ fhirBase: fhir.base, pseudonymizer, ttlSeconds: 60, localTtlMs: 1000, timeoutMs: 60_000, searchTimeoutMs: 60_000, now: () => clock });
  const lookup = (id: string) => source.inEncounter!(pseudonymizer.pseudonymize(id), TIME);

  fhir.state.census = ['a-1'];
  t.equal(await lookup('a-1'), true, 'the first load is waited for');
  t.equal(fhir.state.requests, 1);

  fhir.state.census = ['b-2'];
  fhir.state.hold = true;
  clock += 1001;
  let returned = 0;
  const lookups = Array.from({ length: 10 }, () => [lookup('a-1'), lookup('b-2')]).flat().map((pending) => pending.finally(() => returned++));
  t.ok(await waitUntil(() => fhir.state.held.length > 0, 'the refresh reaches the server'), 'an expired census starts a refresh');
  t.equal(returned, 20, 'every lookup returns while the refresh is pending');

  fhir.release();
  t.same(await Promise.all(lookups), Array.from({ length: 10 }, () => [true, false]).flat(), 'the results come from the census in memory');
  t.equal(fhir.state.requests, 2, 'one refresh for 20 lookups');
  t.ok(await waitUntil(async () => (await lookup('b-2')) === true, 'the refreshed census is in use'), 'the refreshed census replaces the old one');
  t.equal(await lookup('a-1'), false);
  t.equal(fhir.state.requests, 2, 'no further refresh while the new census is fresh');
});

t.test('FHIR flags return stale data during refresh', async (t) => {
  const fhir = await heldFhir(t);
  let clock = TIME;
  const source = createFhirCareSource({ fhirBase: fhir.base, pseudonymizer, ttlSeconds: 60, localTtlMs: 1000, timeoutMs: 60_000, searchTimeoutMs: 60_000, now: () => clock });
  const isVip = async (id: string) => (await source.patientFlags(pseudonymizer.pseudonymize(id))).vip;

  fhir.state.vips = ['a-1'];
  t.equal(await isVip('a-1'), true, 'the first load is waited for');
  t.equal(fhir.state.requests, 1);

  fhir.state.vips = ['b-2'];
  fhir.state.hold = true;
  clock += 1001;
  let returned = 0;
  const lookups = Array.from({ length: 10 }, () => [isVip('a-1'), isVip('b-2')]).flat().map((pending) => pending.finally(() => returned++));
  t.ok(await waitUntil(() => fhir.state.held.length > 0, 'the refresh reaches the server'), 'an expired flag list starts a refresh');
  t.equal(returned, 20, 'every lookup returns while the refresh is pending');

  fhir.release();
  t.same(await Promise.all(lookups), Array.from({ length: 10 }, () => [true, false]).flat(), 'the results come from the flag list in memory');
  t.equal(fhir.state.requests, 2, 'one refresh for 20 lookups');
  t.ok(await waitUntil(async () => (await isVip('b-2')) === true, 'the refreshed flag list is in use'), 'the refreshed flag list replaces the old one');
  t.equal(await isVip('a-1'), false);
  t.equal(fhir.state.requests, 2, 'no further refresh while the new flag list is fresh');
});

t.test('FHIR source replaces corrupt shared cache values', async (t) => {
  const redis = await connectTestRedis();
  const prefix = testPrefix('corrupt');
  const cache = await RedisKeyValueStore.connect({ target: 'redis://127.0.0.1:6379', keyPrefix: prefix });
  t.teardown(async () => {
    await deleteKeysUnder(redis, prefix);
    await cache.close();
    await redis.quit();
  });
  const fhir = await switchableFhir(t);
  const newSource = () => createFhirCareSource({ fhirBase: fhir.base, pseudonymizer, ttlSeconds: 60, cache });
  const p1 = pseudonymizer.pseudonymize('p-0001');
  const p7 = pseudonymizer.pseudonymize('p-0007');

  const badLists: Record<string, string> = {
    'not JSON': '["unterminated',
    'null': 'null',
    'a string': '"abc"',
    'a number': '42',
    'an object': '{}',
    'numbers': '[1,2]',
    'null in the list': '[null]',
    'a patient id in clear': '["p-0001"]',
    'an uppercase pseudonym': JSON.stringify([p1.toUpperCase()]),
    'a short pseudonym': JSON.stringify([p1.slice(1)]),
  };
  const careSetKey = `${prefix}care:{demo-physician}`;
  const censusKey = `${prefix}care:census`;
  for (const [name, value] of Object.entries(badLists)) {
    await redis.set(careSetKey, value);
    t.same(await newSource().careSet('demo-physician', TIME), pseudonyms(ids(1, 25)), `care set read from FHIR over ${name}`);
    t.same(new Set(JSON.parse((await redis.get(careSetKey))!)), pseudonyms(ids(1, 25)), `care set key overwritten over ${name}`);

    await redis.set(censusKey, value);
    t.equal(await newSource().inEncounter!(p1, TIME), true, `census read from FHIR over ${name}`);
    t.same(new Set(JSON.parse((await redis.get(censusKey))!)), pseudonyms(ids(1, 200).filter(inDemoCensus)), `census key overwritten over ${name}`);
  }

  const badFlags: Record<string, string> = {
    'not JSON': '{"unterminated',
    'null': 'null',
    'a list': '[]',
    'a string': '"abc"',
    'a boolean instead of a pair': JSON.stringify({ [p7]: true }),
    'a pair too short': JSON.stringify({ [p7]: [true] }),
    'a string in the pair': JSON.stringify({ [p7]: ['yes', false] }),
    'a patient id in clear': JSON.stringify({ 'p-0007': [true, false] }),
    'an uppercase pseudonym': JSON.stringify({ [p7.toUpperCase()]: [true, false] }),
  };
  const flagsKey = `${prefix}care:flags`;
  for (const [name, value] of Object.entries(badFlags)) {
    await redis.set(flagsKey, value);
    t.same(await newSource().patientFlags(p7), { vip: true, employee: false }, `flags read from FHIR over ${name}`);
    t.same(JSON.parse((await redis.get(flagsKey))!)[p7], [true, false], `flags key overwritten over ${name}`);
  }

  fhir.state.mode = 'down';
  await redis.set(flagsKey, JSON.stringify({ [p1]: [false, true] }));
  t.same(await newSource().patientFlags(p1), { vip: false, employee: true }, 'a valid flag list is read from the cache');
});

t.test('FHIR census reads versioned and absolute references', async (t) => {
  let base = '';
  const server = createServer((_req, res) => {
    const subjects = [
      'Patient/v-1/_history/2',
      `${base}/Patient/w-2`,
      `${base}/Patient/x-3/_history/1`,
      'https://other.example/fhir/Patient/y-4',
      `${base.replace(/\/fhir$/, '/other')}/Patient/z-5`,
      'Patient/h-6/_history/',
    ];
    const encounters = subjects.map((reference, i) => ({ resourceType: 'Encounter', id: `e${i}`, status: 'in-progress', subject: { reference } }));
    res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(searchset(encounters)));
  });
  base = `${await listen(server)}/fhir`;
  t.teardown(() => server.close());
  const source = createFhirCareSource({ fhirBase: base, pseudonymizer, ttlSeconds: 60 });
  const lookup = (id: string) => source.inEncounter!(pseudonymizer.pseudonymize(id), TIME);

  t.equal(await lookup('v-1'), true, 'a relative versioned reference');
  t.equal(await lookup('w-2'), true, 'an absolute reference under the configured base');
  t.equal(await lookup('x-3'), true, 'an absolute versioned reference under the configured base');
  t.equal(await lookup('y-4'), false, 'a reference to another server');
  t.equal(await lookup('z-5'), false, 'a reference to another path on the same origin');
  t.equal(await lookup('h-6'), false, 'a versioned reference without a version id');
});

t.test('FHIR source rejects an invalid searchTimeoutMs', async (t) => {
  t.throws(() => createFhirCareSource({ fhirBase: 'http://127.0.0.1/fhir', pseudonymizer, ttlSeconds: 5, searchTimeoutMs: 1.5 }), { code: 'WG_CARE_INVALID_OPTION', message: 'Invalid option searchTimeoutMs: expected a whole number, 0 or more, received 1.5.' });
});

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

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Serves the demo FHIR API behind a switch that makes it return 503, hang or work. */
async function switchableFhir(t: Test) {
  const dataset = generateDemoDataset();
  const state = { mode: 'up' as 'up' | 'down' | 'hang', requests: 0 };
  const server = createServer((req, res) => {
    state.requests++;
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

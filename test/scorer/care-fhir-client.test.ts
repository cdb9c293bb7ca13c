import { once } from 'node:events';
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import t, { type Test } from 'tap';

import { MAX_RESPONSE_BYTES, MAX_SEARCH_ENTRIES, MAX_SEARCH_PAGES, fetchResource, fetchSearchSet, patientIdOf } from '../../scorer/care/fhir-client.ts';

const OPTIONS = { timeoutMs: 60_000, headers: {} };
const MIB = 1024 * 1024;

/** Starts a FHIR server on 127.0.0.1 with `handler` and returns its base URL, ending with `/fhir/`. */
async function fhirServer(t: Test, handler: RequestListener): Promise<URL> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });

  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir/`);
}

t.test('chunked body over the limit is cut off', async (t) => {
  const served = { bytes: 0, closedEarly: new Promise<boolean>(() => {}) };
  const base = await fhirServer(t, async (_req, res) => {
    served.closedEarly = once(res, 'close').then(() => !res.writableEnded);
    // No content-length, so Node sends the body with chunked transfer coding.
    res.writeHead(200, { 'content-type': 'application/fhir+json' });
    res.write('{"resourceType":"Bundle","type":"searchset","entry":[');
    const chunk = Buffer.alloc(MIB, ' ');
    while (served.bytes < 64 * MIB && !res.destroyed) {
      served.bytes += chunk.length;
      if (!res.write(chunk)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
    }
    if (!res.destroyed) res.end(']}');
  });

  await t.rejects(fetchSearchSet(new URL('Encounter', base), OPTIONS), {
    code: 'WG_CARE_FETCH_FAILED',
    message: `FHIR request /fhir/Encounter failed: the response body is larger than the limit of ${MAX_RESPONSE_BYTES} bytes.`,
  });
  t.equal(await served.closedEarly, true, 'the client closes the response before its end');
  t.ok(served.bytes < 32 * MIB, `${served.bytes / MIB} MiB sent of the 64 MiB the server offered`);
});

t.test('gzip body over the limit after decoding is rejected', async (t) => {
  const body = gzipSync(Buffer.concat([Buffer.from('{"resourceType":"Bundle","entry":['), Buffer.alloc(2 * MAX_RESPONSE_BYTES, ' '), Buffer.from(']}')]));
  const base = await fhirServer(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/fhir+json', 'content-encoding': 'gzip', 'content-length': body.length }).end(body);
  });

  t.ok(body.length < MAX_RESPONSE_BYTES, 'the compressed body is under the limit');
  await t.rejects(fetchSearchSet(new URL('Encounter', base), OPTIONS), {
    code: 'WG_CARE_FETCH_FAILED',
    message: `FHIR request /fhir/Encounter failed: the response body is larger than the limit of ${MAX_RESPONSE_BYTES} bytes.`,
  });
});

t.test('declared length over the limit is rejected', async (t) => {
  const base = await fhirServer(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/fhir+json', 'content-length': MAX_RESPONSE_BYTES + 1 });
    res.write('{"resourceType":"Bundle"');
  });

  await t.rejects(fetchSearchSet(new URL('Encounter', base), OPTIONS), {
    code: 'WG_CARE_FETCH_FAILED',
    message: `FHIR request /fhir/Encounter failed: the response has ${MAX_RESPONSE_BYTES + 1} bytes, above the limit of ${MAX_RESPONSE_BYTES}.`,
  });
});

t.test('malformed bodies are rejected', async (t) => {
  const cases = [
    { name: 'truncated JSON', body: '{"resourceType":"Bund', reason: 'the response is not JSON' },
    { name: 'an empty body', body: '', reason: 'the response is not JSON' },
    { name: 'a JSON list', body: '[]', reason: 'the response is not a FHIR resource (no resourceType)' },
    { name: 'a numeric resourceType', body: '{"resourceType":7}', reason: 'the response is not a FHIR resource (no resourceType)' },
    { name: 'another resource type', body: '{"resourceType":"Patient","id":"p-1"}', reason: 'expected a Bundle, received Patient' },
  ];
  for (const { name, body, reason } of cases) {
    const base = await fhirServer(t, (_req, res) => res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(body));
    await t.rejects(fetchSearchSet(new URL('Encounter', base), OPTIONS), { code: 'WG_CARE_FETCH_FAILED', message: `FHIR request /fhir/Encounter failed: ${reason}.` }, name);
  }
});

t.test('next link to the same page stops at the page limit', async (t) => {
  let pages = 0;
  const base = await fhirServer(t, (req, res) => {
    pages++;
    const bundle = { resourceType: 'Bundle', type: 'searchset', link: [{ relation: 'next', url: req.url }], entry: [] };
    res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(bundle));
  });

  await t.rejects(fetchSearchSet(new URL('Encounter', base), OPTIONS), {
    code: 'WG_CARE_FETCH_FAILED',
    message: `FHIR request /fhir/Encounter failed: the search has more than ${MAX_SEARCH_PAGES} pages.`,
  });
  t.equal(pages, MAX_SEARCH_PAGES);
});

t.test('search that ignores _count stops at the entry limit', async (t) => {
  let pages = 0;
  const base = await fhirServer(t, (req, res) => {
    pages++;
    // 3000 entries a page, as a server that ignores _count=100 would send.
    const entry = Array.from({ length: 3000 }, (_, index) => ({ resource: { resourceType: 'Encounter', id: `e${pages}-${index}`, status: 'in-progress' } }));
    const bundle = { resourceType: 'Bundle', type: 'searchset', link: [{ relation: 'next', url: `${req.url}&page=${pages + 1}` }], entry };
    res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(bundle));
  });

  await t.rejects(fetchSearchSet(new URL('Encounter?status=in-progress', base), OPTIONS), {
    code: 'WG_CARE_FETCH_FAILED',
    message: `FHIR request /fhir/Encounter failed: the search returned more than ${MAX_SEARCH_ENTRIES} entries.`,
  });
  t.equal(pages, 2, 'the second page crosses the limit');
});

t.test('redirect is reported, not followed', async (t) => {
  for (const status of [301, 302, 303, 307, 308]) {
    const base = await fhirServer(t, (_req, res) => res.writeHead(status, { location: 'https://elsewhere.example/fhir/Patient/p-1' }).end());

    const failure = fetchResource(new URL('Practitioner/dr-1', base), OPTIONS);
    await t.rejects(failure, {
      code: 'WG_CARE_FETCH_FAILED',
      message: `FHIR request /fhir/Practitioner/dr-1 failed: the server responded with a redirect (status ${status}, location on https://elsewhere.example), which is not followed. Set the FHIR base URL to the address the server redirects to.`,
    }, `status ${status}`);
  }

  const base = await fhirServer(t, (_req, res) => res.writeHead(302).end());
  await t.rejects(fetchSearchSet(new URL('Encounter', base), OPTIONS), {
    message: 'FHIR request /fhir/Encounter failed: the server responded with a redirect (status 302, no location), which is not followed. Set the FHIR base URL to the address the server redirects to.',
  }, 'a redirect without a location');
});

t.test('patientIdOf accepts only this server\'s Patient references', async (t) => {
  const base = new URL('https://ehr.hospital.test/fhir/');
  const cases: Array<[unknown, string | null]> = [
    ['Patient/p-1', 'p-1'],
    ['Patient/p-1/_history/2', 'p-1'],
    ['https://ehr.hospital.test/fhir/Patient/p-1', 'p-1'],
    ['https://ehr.hospital.test/fhir/Patient/p-1/_history/2', 'p-1'],
    ['https://EHR.hospital.test:443/fhir/Patient/p-1', 'p-1'],
    ['https://other.example/fhir/Patient/x', null],
    ['http://ehr.hospital.test/fhir/Patient/p-1', null],
    ['https://ehr.hospital.test/other/Patient/p-1', null],
    ['https://ehr.hospital.test/fhirx/Patient/p-1', null],
    ['https://ehr.hospital.test/fhir/Group/g-1/Patient/p-1', null],
    ['//ehr.hospital.test/fhir/Patient/p-1', null],
    ['Group/g-1/Patient/p-1', null],
    ['Group/g-1', null],
    ['Patient/', null],
    ['Patient/p-1/_history', null],
    ['Patient/p-1/_history/', null],
    ['Patient/p-1/_history/2/extra', null],
    ['Patient/p-1?_format=json', null],
    ['Patient/p-1#contained', null],
    ['urn:uuid:9d9a8f24-1c5e-4f7a-9a1e-2f8f0f6b3c11', null],
    ['https://', null],
    [42, null],
    [null, null],
  ];

  for (const [reference, expected] of cases) {
    t.equal(patientIdOf({ reference }, base), expected, JSON.stringify(reference));
  }
  t.equal(patientIdOf('Patient/p-1', base), null, 'a string instead of a Reference');
  t.equal(patientIdOf(undefined, base), null, 'no Reference');
});

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import t from 'tap';

import { BearerVerifier } from '../../proxy/identity/bearer.ts';

const AUDIENCE = 'wardgate-api';
const COOLDOWN_S = 30;

const oldKeys = await generateKeyPair('ES256');
const newKeys = await generateKeyPair('ES256');
const oldJwk: JWK = { ...await exportJWK(oldKeys.publicKey), kid: 'old', alg: 'ES256' };
const newJwk: JWK = { ...await exportJWK(newKeys.publicKey), kid: 'new', alg: 'ES256' };

/** A JWKS server that counts its fetches and serves whatever `published` holds. */
let published: JWK[] = [oldJwk];
let fetches = 0;
let failing = false;
const server = createServer((_req, res) => {
  fetches += 1;
  if (failing) {
    res.statusCode = 500;
    res.end();
    return;
  }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ keys: published }));
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));

const START_S = 1_900_000_000;

function token(kid: string, key: CryptoKeyLike, nowS: number): Promise<string> {
  return new SignJWT({ sub: 'service-a' })
    .setProtectedHeader({ alg: 'ES256', kid })
    .setIssuer(issuer)
    .setAudience(AUDIENCE)
    .setIssuedAt(nowS)
    .setExpirationTime(nowS + 3600)
    .sign(key);
}
type CryptoKeyLike = Parameters<SignJWT['sign']>[0];

async function freshVerifier(): Promise<BearerVerifier> {
  fetches = 0;
  published = [oldJwk];
  failing = false;
  return BearerVerifier.create([{ issuer, audience: AUDIENCE, jwks_uri: `${issuer}/jwks`, algorithms: ['ES256'] }], { jwks_cooldown_s: COOLDOWN_S, jwks_max_age_s: 3600 });
}

t.test('keys are fetched once and cached', async (t) => {
  const verifier = await freshVerifier();
  t.equal(fetches, 0, 'nothing is fetched before the first token');

  for (let i = 0; i < 5; i += 1) {
    const principal = await verifier.verify(await token('old', oldKeys.privateKey, START_S), START_S + i);
    t.equal(principal.subject, 'service-a');
  }
  t.equal(fetches, 1, 'five verifications, one fetch');
});

t.test('unknown kid refetches at most once per cooldown', async (t) => {
  const verifier = await freshVerifier();
  await verifier.verify(await token('old', oldKeys.privateKey, START_S), START_S);
  t.equal(fetches, 1);

  for (let i = 0; i < 10; i += 1) {
    await t.rejects(verifier.verify(await token(`invented-${i}`, newKeys.privateKey, START_S), START_S + 1), { code: 'WG_AUTH_TOKEN_INVALID' });
  }
  t.equal(fetches, 1, 'invented kids within the cooldown cause no fetch');

  await t.rejects(verifier.verify(await token('invented-late', newKeys.privateKey, START_S), START_S + COOLDOWN_S), { code: 'WG_AUTH_TOKEN_INVALID' });
  t.equal(fetches, 2, 'after the cooldown one unknown kid causes one fetch');

  await t.rejects(verifier.verify(await token('invented-later', newKeys.privateKey, START_S), START_S + COOLDOWN_S + 1), { code: 'WG_AUTH_TOKEN_INVALID' });
  t.equal(fetches, 2, 'and the next cooldown starts then');
});

t.test('rotated key works after the refetch', async (t) => {
  const verifier = await freshVerifier();
  await verifier.verify(await token('old', oldKeys.privateKey, START_S), START_S);

  published = [oldJwk, newJwk];
  const rotated = await token('new', newKeys.privateKey, START_S);
  await t.rejects(verifier.verify(rotated, START_S + 1), { code: 'WG_AUTH_TOKEN_INVALID' }, 'within the cooldown the new key is not known yet');
  t.equal(fetches, 1);

  const principal = await verifier.verify(rotated, START_S + COOLDOWN_S + 1);
  t.equal(principal.subject, 'service-a', 'after the cooldown the new key verifies');
  t.equal(fetches, 2);

  t.equal((await verifier.verify(await token('old', oldKeys.privateKey, START_S), START_S + COOLDOWN_S + 2)).subject, 'service-a', 'the old key still works while published');
  t.equal(fetches, 2);
});

t.test('concurrent first use shares one fetch', async (t) => {
  const verifier = await freshVerifier();
  const signed = await token('old', oldKeys.privateKey, START_S);
  await Promise.all(Array.from({ length: 8 }, () => verifier.verify(signed, START_S)));
  t.equal(fetches, 1);
});

t.test('unreachable JWKS gives WG_AUTH_JWKS_UNAVAILABLE, cached keys survive an outage', async (t) => {
  const verifier = await freshVerifier();
  failing = true;
  await t.rejects(verifier.verify(await token('old', oldKeys.privateKey, START_S), START_S), { code: 'WG_AUTH_JWKS_UNAVAILABLE', message: /JWKS at http:\/\/127\.0\.0\.1:\d+\/jwks could not be fetched \(status 500\)/ });

  t.equal(fetches, 1);

  failing = false;
  await t.rejects(verifier.verify(await token('old', oldKeys.privateKey, START_S), START_S + 1), { code: 'WG_AUTH_JWKS_UNAVAILABLE' }, 'within the cooldown the failure is repeated');
  t.equal(fetches, 1, 'without a new fetch');

  t.equal((await verifier.verify(await token('old', oldKeys.privateKey, START_S), START_S + COOLDOWN_S)).subject, 'service-a', 'after the cooldown the keys are fetched');
  t.equal(fetches, 2);

  failing = true;
  published = [oldJwk, newJwk];
  await t.rejects(verifier.verify(await token('new', newKeys.privateKey, START_S), START_S + 2 * COOLDOWN_S), { code: 'WG_AUTH_TOKEN_INVALID' }, 'an unknown kid during an outage is invalid');
  t.equal(fetches, 3);
  t.equal((await verifier.verify(await token('old', oldKeys.privateKey, START_S), START_S + 2 * COOLDOWN_S + 1)).subject, 'service-a', 'cached keys still verify during the outage');
});

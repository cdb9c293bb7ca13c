// @peculiar/x509 depends on tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';

import * as x509 from '@peculiar/x509';

import { importPrivateKey, type PemKeyPair } from './dev-certificates.ts';
import { CertsError } from './errors.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
const CRL_LIFETIME_DAYS = 7;

/**
 * Issues a certificate revocation list (RFC 5280 section 5), signed by `ca`, that revokes
 * `revoked` (PEM certificates issued by that CA). The CRL is valid for 7 days from `now`
 * (milliseconds since the epoch, default now). An empty list gives a valid CRL that revokes
 * nothing, which is what a CA with client certificates must publish when OpenSSL checks CRLs.
 *
 * @throws {CertsError} `WG_CERTS_INVALID_OPTION` for a certificate that `ca` did not issue.
 */
export async function issueCrl(ca: PemKeyPair, revoked: readonly string[] = [], now: number = Date.now()): Promise<string> {
  const caCert = new x509.X509Certificate(ca.cert);
  const signingKey = await importPrivateKey(ca.key);

  const entries: x509.X509CrlEntryParams[] = [];
  for (const [index, pem] of revoked.entries()) {
    const cert = new x509.X509Certificate(pem);
    // Development CAs share one subject name, so only the signature identifies the issuing CA.
    if (!(await cert.verify({ publicKey: caCert.publicKey, signatureOnly: true }))) {
      throw new CertsError('WG_CERTS_INVALID_OPTION', `Certificate ${index} to revoke (${cert.subject}) was not signed by this CA (${caCert.subject}). A CRL can revoke only its own CA's certificates.`);
    }
    entries.push({ serialNumber: cert.serialNumber, revocationDate: new Date(now - 1000), reason: x509.X509CrlReason.keyCompromise });
  }

  const crl = await x509.X509CrlGenerator.create({
    issuer: caCert.subject,
    thisUpdate: new Date(now - 60_000),
    nextUpdate: new Date(now + CRL_LIFETIME_DAYS * DAY_MS),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    signingKey,
    entries,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey)],
  });

  // OpenSSL reads only the "X509 CRL" PEM label (RFC 7468 section 9), not the "CRL" that @peculiar/x509 writes.
  return x509.PemConverter.encode(crl.rawData, 'X509 CRL') + '\n';
}

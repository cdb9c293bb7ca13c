// @peculiar/x509 depends on tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';

import { X509Certificate as NodeX509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { join } from 'node:path';

import * as x509 from '@peculiar/x509';

import { CertsError } from './errors.ts';
import { ensurePrivateDirectory, readOptionalFile, writeFileAtomic } from './pem-files.ts';

/** A certificate and its private key, both PEM. */
export interface PemKeyPair {
  readonly cert: string;
  readonly key: string;
}

/** The development CA and server certificate that `ensureDevCertificates` keeps in a directory. */
export interface DevCertificates {
  readonly dir: string;
  readonly ca: PemKeyPair;
  readonly server: PemKeyPair;
  /** Names the server certificate covers (DNS names and IP addresses). */
  readonly hostnames: readonly string[];
  readonly paths: { readonly caCert: string; readonly caKey: string; readonly serverCert: string; readonly serverKey: string };
  /** Generation flags of this call: `true` for a new certificate, `false` for a reused file. */
  readonly generated: { readonly ca: boolean; readonly server: boolean };
}

export const DEFAULT_CERTS_DIR = '.wardgate/certs';
export const DEFAULT_HOSTNAMES: readonly string[] = Object.freeze(['localhost', 'ehr.localhost', 'idp.localhost', '127.0.0.1', '::1']);

const DAY_MS = 24 * 60 * 60 * 1000;
const CA_LIFETIME_DAYS = 5 * 365;
const SERVER_LIFETIME_DAYS = 90;
const CLIENT_LIFETIME_DAYS = 90;
/** A server certificate that expires sooner than this is replaced. */
const SERVER_RENEW_BEFORE_DAYS = 7;
/** A CA that expires sooner than this is replaced, together with the server certificate. */
const CA_RENEW_BEFORE_DAYS = 30;
/** Always in the server certificate, so `https://127.0.0.1` and `https://[::1]` work. */
const LOOPBACK_ADDRESSES = ['127.0.0.1', '::1'];
const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/**
 * Ensures `dir` contains a development CA (`ca.crt`, `ca.key`) and a server certificate
 * (`server.crt`, `server.key`) signed by it that covers `hostnames`, 127.0.0.1 and ::1.
 *
 * Existing files are reused while they are valid. The server certificate is regenerated
 * when it expires within 7 days, lacks one of the names or no longer matches the CA; the
 * CA is regenerated when it is missing, broken or expires within 30 days. Private keys are
 * written with mode 0600 and the directory gets mode 0700. `options.now` (milliseconds since
 * the epoch) replaces the clock for validity checks and new certificates.
 *
 * @throws {CertsError} `WG_CERTS_INVALID_HOSTNAME` for a name that is neither a DNS name nor an IP address.
 */
export async function ensureDevCertificates(
  dir: string = DEFAULT_CERTS_DIR,
  hostnames: readonly string[] = DEFAULT_HOSTNAMES,
  options: { readonly now?: number } = {},
): Promise<DevCertificates> {
  const names = normalizeHostnames(hostnames);
  const paths = {
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
  };
  const now = options.now ?? Date.now();

  await ensurePrivateDirectory(dir);

  let ca = await readPair(paths.caCert, paths.caKey);
  const caReusable = ca !== undefined && isUsableCa(ca, now);
  if (!caReusable) {
    ca = await createCertificateAuthority(now);
    await writePair(ca, paths.caCert, paths.caKey);
  }

  let server = await readPair(paths.serverCert, paths.serverKey);
  const serverReusable = caReusable && server !== undefined && isUsableServerCertificate(server, ca!, names, now);
  if (!serverReusable) {
    server = await issueServerCertificate(ca!, names, now);
    await writePair(server, paths.serverCert, paths.serverKey);
  }

  return Object.freeze({
    dir,
    ca: ca!,
    server: server!,
    hostnames: Object.freeze(names),
    paths: Object.freeze(paths),
    generated: Object.freeze({ ca: !caReusable, server: !serverReusable }),
  });
}

/**
 * Issues a client (mTLS) certificate for a device or service named `name`, signed by `ca`.
 * The name is the subject CN and a DNS SAN; `options.uri` (such as
 * `urn:hospital:device:pump-17`) adds a URI SAN, which Wardgate prefers as the device
 * identity. The certificate carries the clientAuth EKU and is valid for 90 days from
 * `options.now` (milliseconds since the epoch, default now).
 */
export async function issueClientCertificate(ca: PemKeyPair, name: string, options: { readonly uri?: string; readonly now?: number } = {}): Promise<PemKeyPair> {
  const normalized = typeof name === 'string' ? name.trim().toLowerCase() : '';
  if (!DNS_NAME.test(normalized) || isIP(normalized) !== 0) {
    throw new CertsError('WG_CERTS_INVALID_HOSTNAME', `Client certificate name ${JSON.stringify(name)} is invalid: expected a DNS-style name such as "infusion-pump-17". Use letters, digits, dots and hyphens.`);
  }
  if (options.uri !== undefined && !/^[a-z][a-z0-9+.-]*:[\x21-\x7e]+$/i.test(options.uri)) {
    throw new CertsError('WG_CERTS_INVALID_OPTION', `Client certificate URI ${JSON.stringify(options.uri)} is invalid: expected an absolute URI without spaces, such as "urn:hospital:device:pump-17".`);
  }

  const sanEntries: x509.JsonGeneralName[] = [{ type: 'dns', value: normalized }];
  if (options.uri !== undefined) sanEntries.unshift({ type: 'url', value: options.uri });

  return issueLeafCertificate(ca, {
    commonName: normalized,
    sanEntries,
    extendedKeyUsage: x509.ExtendedKeyUsage.clientAuth,
    lifetimeDays: CLIENT_LIFETIME_DAYS,
    now: options.now ?? Date.now(),
  });
}

/** Lowercases and deduplicates names, appends the loopback addresses and validates each one. */
function normalizeHostnames(hostnames: readonly string[]): string[] {
  const names: string[] = [];

  for (const raw of [...hostnames, ...LOOPBACK_ADDRESSES]) {
    if (typeof raw !== 'string') {
      throw new CertsError('WG_CERTS_INVALID_HOSTNAME', `Host name ${JSON.stringify(raw)} is invalid: expected a string.`);
    }

    const name = raw.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
    if (isIP(name) === 0 && !DNS_NAME.test(name)) {
      throw new CertsError('WG_CERTS_INVALID_HOSTNAME', `Host name "${raw}" is invalid: expected a DNS name (letters, digits, hyphens, dots) or an IP address.`);
    }

    if (!names.includes(name)) names.push(name);
  }

  return names;
}

async function readPair(certPath: string, keyPath: string): Promise<PemKeyPair | undefined> {
  const [cert, key] = await Promise.all([readOptionalFile(certPath), readOptionalFile(keyPath)]);
  if (cert === undefined || key === undefined) return undefined;

  return { cert, key };
}

async function writePair(pair: PemKeyPair, certPath: string, keyPath: string): Promise<void> {
  await writeFileAtomic(keyPath, pair.key, 0o600);
  await writeFileAtomic(certPath, pair.cert, 0o644);
}

/** Parses a PEM pair with Node's X.509 support; `undefined` when it is broken or the key does not match. */
function parsePair(pair: PemKeyPair): NodeX509Certificate | undefined {
  try {
    const cert = new NodeX509Certificate(pair.cert);
    return cert.checkPrivateKey(createPrivateKey(pair.key)) ? cert : undefined;
  } catch {
    return undefined;
  }
}

function isUsableCa(ca: PemKeyPair, now: number): boolean {
  const cert = parsePair(ca);
  if (cert === undefined || !cert.ca) return false;

  return Date.parse(cert.validFrom) <= now && Date.parse(cert.validTo) - now > CA_RENEW_BEFORE_DAYS * DAY_MS;
}

function isUsableServerCertificate(server: PemKeyPair, ca: PemKeyPair, names: readonly string[], now: number): boolean {
  const cert = parsePair(server);
  if (cert === undefined) return false;

  const caCert = new NodeX509Certificate(ca.cert);
  if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) return false;

  if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) - now <= SERVER_RENEW_BEFORE_DAYS * DAY_MS) return false;

  return names.every((name) => (isIP(name) !== 0
    ? cert.checkIP(name) !== undefined
    : cert.checkHost(name, { wildcards: false, subject: 'never' }) !== undefined));
}

async function createCertificateAuthority(now: number): Promise<PemKeyPair> {
  const keys = await webcrypto.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify']);
  const name = 'CN=Wardgate Development CA, O=Wardgate development (not for production)';

  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: name,
    issuer: name,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + CA_LIFETIME_DAYS * DAY_MS),
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });

  return { cert: cert.toString('pem') + '\n', key: await exportPrivateKey(keys.privateKey) };
}

function issueServerCertificate(ca: PemKeyPair, names: readonly string[], now: number): Promise<PemKeyPair> {
  return issueLeafCertificate(ca, {
    commonName: names.find((name) => isIP(name) === 0) ?? names[0]!,
    sanEntries: names.map((name) => ({ type: isIP(name) === 0 ? 'dns' : 'ip', value: name })),
    extendedKeyUsage: x509.ExtendedKeyUsage.serverAuth,
    lifetimeDays: SERVER_LIFETIME_DAYS,
    now,
  });
}

interface LeafRequest {
  readonly commonName: string;
  readonly sanEntries: x509.JsonGeneralName[];
  readonly extendedKeyUsage: string;
  readonly lifetimeDays: number;
  readonly now: number;
}

async function issueLeafCertificate(ca: PemKeyPair, request: LeafRequest): Promise<PemKeyPair> {
  const caCert = new x509.X509Certificate(ca.cert);
  const caKey = await importPrivateKey(ca.key);
  const keys = await webcrypto.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify']);

  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: `CN=${request.commonName}`,
    issuer: caCert.subject,
    notBefore: new Date(request.now - 60_000),
    notAfter: new Date(request.now + request.lifetimeDays * DAY_MS),
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([request.extendedKeyUsage], false),
      new x509.SubjectAlternativeNameExtension(request.sanEntries, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });

  return { cert: cert.toString('pem') + '\n', key: await exportPrivateKey(keys.privateKey) };
}

/** Imports the CA's PEM private key for signing; throws `WG_CERTS_INVALID_CA` when it is unreadable. */
export async function importPrivateKey(pem: string): Promise<webcrypto.CryptoKey> {
  try {
    const der = createPrivateKey(pem).export({ format: 'der', type: 'pkcs8' });
    return await webcrypto.subtle.importKey('pkcs8', der, ECDSA_P256, false, ['sign']);
  } catch (cause) {
    throw new CertsError('WG_CERTS_INVALID_CA', `The CA private key is invalid: expected a PEM ECDSA P-256 key, got an unreadable key (${(cause as Error).message}). Delete the certificate directory to generate a new CA.`, { cause });
  }
}

async function exportPrivateKey(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const body = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');

  return `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`;
}

/** Generates a positive 128-bit serial number (RFC 5280 section 4.1.2.2 allows up to 20 octets). */
function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;

  return bytes.toString('hex');
}

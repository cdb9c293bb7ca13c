import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { DEFAULT_CERTS_DIR, issueClientCertificate, type PemKeyPair } from './dev-certificates.ts';
import { CertsError } from './errors.ts';
import { ensurePrivateDirectory, readOptionalFile, writeFileAtomic } from './pem-files.ts';
import { issueCrl } from './revocation.ts';
import type { TextSink } from './cli.ts';

const USAGE = `Usage: wardgate certs client NAME [--uri URI] [--dir DIR]
       wardgate certs crl [--revoke FILE]... [--dir DIR]

client  Issues a client (mTLS) certificate for the device NAME, signed by the
        development CA in DIR, into DIR/clients/NAME.crt and NAME.key.
        --uri URI adds a URI SAN (such as urn:hospital:device:pump-17), which
        Wardgate uses as the device identity in place of the DNS name NAME.
crl     Writes DIR/ca.crl, a CRL of the development CA that revokes exactly the
        certificates given with --revoke (PEM files); without --revoke it
        revokes nothing. The file replaces the previous CRL, so list every
        revoked certificate each time. Point tls.crl at it; Wardgate reloads it.

Options:
  --dir DIR     directory of ca.crt and ca.key from "wardgate certs dev"
                (default: ${DEFAULT_CERTS_DIR})
  -h, --help    print this help and exit
`;

interface Arguments {
  readonly help: boolean;
  readonly positional: string[];
  readonly dir: string;
  readonly uri?: string;
  readonly revoke: string[];
}

/**
 * Runs `wardgate certs client` or `wardgate certs crl`; `argv` starts with the subcommand.
 * Returns the exit code: 0 on success, 1 when a file could not be read or written, 2 for
 * invalid arguments.
 */
export async function runDeviceCertsCommand(argv: readonly string[], out: TextSink, err: TextSink): Promise<number> {
  const command = argv[0];
  let parsed: Arguments;
  try {
    parsed = parseArguments(argv.slice(1), command === 'client' ? ['--dir', '--uri'] : ['--dir', '--revoke']);
    if (!parsed.help && command === 'client' && parsed.positional.length !== 1) {
      throw new CertsError('WG_CERTS_INVALID_OPTION', `expected one device NAME, received ${parsed.positional.length}`);
    }
    if (!parsed.help && command === 'crl' && parsed.positional.length > 0) {
      throw new CertsError('WG_CERTS_INVALID_OPTION', `unexpected argument "${parsed.positional[0]}"; give certificates to revoke with --revoke FILE`);
    }
  } catch (error) {
    err.write(`wardgate certs ${command}: ${(error as Error).message} (see --help)\n`);
    return 2;
  }

  if (parsed.help) {
    out.write(USAGE);
    return 0;
  }

  try {
    const ca = await readCa(parsed.dir);
    if (command === 'client') {
      const name = parsed.positional[0]!;
      const pair = await issueClientCertificate(ca, name, parsed.uri === undefined ? {} : { uri: parsed.uri });
      const dir = join(parsed.dir, 'clients');
      await ensurePrivateDirectory(dir);
      const base = join(dir, name.trim().toLowerCase());
      await writeFileAtomic(`${base}.key`, pair.key, 0o600);
      await writeFileAtomic(`${base}.crt`, pair.cert, 0o644);
      out.write(`Client certificate: ${base}.crt\nPrivate key:        ${base}.key\n`);
      return 0;
    }

    const revoked = await Promise.all(parsed.revoke.map(async (file) => {
      const pem = await readOptionalFile(file);
      if (pem === undefined) throw new CertsError('WG_CERTS_INVALID_OPTION', `certificate to revoke "${file}" does not exist; check the path`);
      return pem;
    }));
    const file = join(parsed.dir, 'ca.crl');
    await writeFileAtomic(file, await issueCrl(ca, revoked), 0o644);
    out.write(`CRL: ${file} (${revoked.length} revoked certificate${revoked.length === 1 ? '' : 's'}, valid for 7 days)\n`);
    return 0;
  } catch (error) {
    err.write(`wardgate certs ${command}: ${(error as Error).message}\n`);
    return error instanceof CertsError && (error.code === 'WG_CERTS_INVALID_OPTION' || error.code === 'WG_CERTS_INVALID_HOSTNAME') ? 2 : 1;
  }
}

async function readCa(dir: string): Promise<PemKeyPair> {
  const [cert, key] = await Promise.all([readFile(join(dir, 'ca.crt'), 'utf8').catch(() => undefined), readFile(join(dir, 'ca.key'), 'utf8').catch(() => undefined)]);
  if (cert === undefined || key === undefined) {
    throw new CertsError('WG_CERTS_INVALID_CA', `No development CA in "${dir}" (ca.crt and ca.key). Run "wardgate certs dev --dir ${dir}" first, or pass --dir with the folder of an existing CA.`);
  }

  return { cert, key };
}

function parseArguments(argv: readonly string[], flags: readonly string[]): Arguments {
  let help = false;
  let dir: string | undefined;
  let uri: string | undefined;
  const positional: string[] = [];
  const revoke: string[] = [];

  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index]!;
    if (argument === '-h' || argument === '--help') {
      help = true;
      continue;
    }
    if (!argument.startsWith('--')) {
      positional.push(argument);
      continue;
    }

    const [flag, inlineValue] = argument.includes('=') ? [argument.slice(0, argument.indexOf('=')), argument.slice(argument.indexOf('=') + 1)] : [argument, undefined];
    if (!flags.includes(flag)) {
      throw new CertsError('WG_CERTS_INVALID_OPTION', `unknown argument "${argument}"; expected ${flags.join(', ')} or --help`);
    }
    const value = inlineValue ?? argv[++index];
    if (value === undefined || value === '' || (inlineValue === undefined && value.startsWith('--'))) {
      throw new CertsError('WG_CERTS_INVALID_OPTION', `option ${flag} requires a value`);
    }

    if (flag === '--revoke') {
      revoke.push(value);
    } else if (flag === '--uri') {
      if (uri !== undefined) throw new CertsError('WG_CERTS_INVALID_OPTION', 'option --uri was given more than once');
      uri = value;
    } else {
      if (dir !== undefined) throw new CertsError('WG_CERTS_INVALID_OPTION', 'option --dir was given more than once');
      dir = value;
    }
  }

  return { help, positional, dir: dir ?? DEFAULT_CERTS_DIR, revoke, ...(uri === undefined ? {} : { uri }) };
}

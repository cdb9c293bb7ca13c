import { CertsError } from './errors.ts';
import { DEFAULT_CERTS_DIR, DEFAULT_HOSTNAMES, ensureDevCertificates } from './dev-certificates.ts';

/** Output stream of the command, such as `process.stdout` or `process.stderr`. */
export interface TextSink {
  write(text: string): unknown;
}

const USAGE = `Usage: wardgate certs dev [--dir DIR] [--host NAME]...

Creates or reuses a local development CA and a server certificate signed by it.
Existing files are reused while valid; the server certificate is renewed when it
expires within 7 days or lacks a requested name.

Options:
  --dir DIR     directory for ca.crt, ca.key, server.crt, server.key
                (default: ${DEFAULT_CERTS_DIR}; created with mode 0700)
  --host NAME   DNS name or IP address the server certificate must cover;
                repeat for several names (default: ${DEFAULT_HOSTNAMES.join(', ')}).
                127.0.0.1 and ::1 are always included.
  -h, --help    print this help and exit
`;

interface CertsDevArguments {
  readonly help: boolean;
  readonly dir: string;
  readonly hosts: readonly string[];
}

/**
 * Runs `wardgate certs dev` with the arguments that follow `certs dev`.
 * Returns the exit code: 0 on success, 1 when the certificates could not be written,
 * 2 for invalid arguments.
 */
export async function runCertsDev(argv: readonly string[], out: TextSink, err: TextSink): Promise<number> {
  let parsed: CertsDevArguments;
  try {
    parsed = parseArguments(argv);
  } catch (error) {
    err.write(`wardgate certs dev: ${(error as Error).message} (see --help)\n`);
    return 2;
  }

  if (parsed.help) {
    out.write(USAGE);
    return 0;
  }

  try {
    const certificates = await ensureDevCertificates(parsed.dir, parsed.hosts.length > 0 ? parsed.hosts : DEFAULT_HOSTNAMES);
    const state = (generated: boolean): string => (generated ? 'created' : 'reused');

    out.write(`CA certificate:     ${certificates.paths.caCert} (${state(certificates.generated.ca)})\n`);
    out.write(`Server certificate: ${certificates.paths.serverCert} (${state(certificates.generated.server)})\n`);
    out.write(`Names covered:      ${certificates.hostnames.join(', ')}\n`);
    out.write(`Trust ${certificates.paths.caCert} in your browser or system store to avoid certificate warnings.\n`);
    return 0;
  } catch (error) {
    if (error instanceof CertsError && error.code === 'WG_CERTS_INVALID_HOSTNAME') {
      err.write(`wardgate certs dev: ${error.message}\n`);
      return 2;
    }

    err.write(`wardgate certs dev: ${(error as Error).message}\n`);
    return 1;
  }
}

function parseArguments(argv: readonly string[]): CertsDevArguments {
  let help = false;
  let dir: string | undefined;
  const hosts: string[] = [];

  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index]!;
    const [flag, inlineValue] = argument.startsWith('--') && argument.includes('=')
      ? [argument.slice(0, argument.indexOf('=')), argument.slice(argument.indexOf('=') + 1)]
      : [argument, undefined];

    if (flag === '-h' || flag === '--help') {
      help = true;
      continue;
    }

    if (flag !== '--dir' && flag !== '--host') {
      throw new CertsError('WG_CERTS_INVALID_OPTION', `unknown argument "${argument}"; expected --dir DIR, --host NAME or --help`);
    }

    const value = inlineValue ?? argv[++index];
    if (value === undefined || value === '' || (inlineValue === undefined && value.startsWith('--'))) {
      throw new CertsError('WG_CERTS_INVALID_OPTION', `option ${flag} requires a value`);
    }

    if (flag === '--dir') {
      if (dir !== undefined) throw new CertsError('WG_CERTS_INVALID_OPTION', 'option --dir was given more than once');
      dir = value;
    } else {
      hosts.push(value);
    }
  }

  return { help, dir: dir ?? DEFAULT_CERTS_DIR, hosts };
}

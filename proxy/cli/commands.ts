const USAGE = `Usage: wardgate <command> [options]

Commands:
  demo [--port N]              Run the demo: IdP, clinical app and Wardgate on https://localhost:8443 or port N
  start --config FILE          Run Wardgate with a configuration file
  certs dev [--dir DIR]        Create a local CA and a server certificate for development
  certs client NAME [--uri URI] [--dir DIR]  Issue a device (mTLS) certificate from the development CA
  certs crl [--revoke FILE]... [--dir DIR]   Write a CRL of the development CA
  policy validate FILE...      Check policy files and print every error with file:line:column
  replay FILE [options]        Decide a recorded access log through the live decision path
  review list|show|label       Work the review queue: list pending entries, show one, label it
  policy test PATH...          Run the policy tests (*.tests.yaml) under PATH
  policy explain --policy FILE Show how each rule fares for one request
  policy keygen --out DIR      Create key pairs for signing policies
  policy sign --key-dir DIR F  Sign a policy file (writes F.sig)
  audit verify DIR             Verify the hash chain and signed checkpoints of an audit trail

Run "wardgate <command> --help" for a command's options.
`;

type Output = NodeJS.WritableStream;
type Command = (argv: string[], out: Output, err: Output) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  demo: async (argv, out, err) => (await import('./demo-command.ts')).runDemoCommand(argv, out, err),
  start: async (argv, out, err) => (await import('./start-command.ts')).runStartCommand(argv, out, err),
  certs: async (argv, out, err) => {
    if (argv[0] === 'client' || argv[0] === 'crl') return (await import('../../certs/device-cli.ts')).runDeviceCertsCommand(argv, out, err);
    if (argv[0] === '--help' || argv[0] === '-h') {
      out.write('Usage: wardgate certs dev|client|crl [options]\n\n  certs dev [--dir DIR] [--host H]...   create a development CA and server certificate\n  certs client NAME [--uri URI] [--dir DIR]  issue a device (mTLS) certificate from that CA\n  certs crl [--revoke FILE]... [--dir DIR]   write a CRL of that CA\n\nRun "wardgate certs SUBCOMMAND --help" for its options.\n');
      return 0;
    }
    if (argv[0] !== 'dev') return usageError(err, `unknown certs subcommand ${JSON.stringify(argv[0] ?? '')}; expected "certs dev", "certs client" or "certs crl"`);
    return (await import('../../certs/cli.ts')).runCertsDev(argv.slice(1), out, err);
  },
  replay: async (argv, out, err) => (await import('./replay-command.ts')).runReplayCommand(argv, out, err),
  policy: async (argv, out, err) => (await import('./policy-command.ts')).runPolicyCommand(argv, out, err),
  review: async (argv, out, err) => (await import('../review/cli.ts')).runReviewCommand(argv, out, err),
  audit: async (argv, out, err) => (await import('./audit-command.ts')).runAuditCommand(argv, out, err),
};

/** Runs one CLI invocation and returns its exit code: 0 success, 1 failure, 2 usage error. */
export async function runCli(argv: string[], out: Output, err: Output): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    out.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) return usageError(err, `unknown command ${JSON.stringify(name)}; run "wardgate --help" for the list`);
  return command(rest, out, err);
}

export function usageError(err: Output, reason: string): number {
  err.write(`wardgate: ${reason}\n`);
  return 2;
}

/**
 * Parses `--name value` and `--flag` options. Unknown options and missing values are
 * reported as a one-line reason.
 */
export function parseOptions(
  argv: string[],
  spec: Record<string, 'string' | 'boolean'>,
): { options: Record<string, string | boolean>; positional: string[] } | { error: string } {
  const options: Record<string, string | boolean> = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const [flag, inlineValue] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const kind = spec[flag];
    if (!kind) return { error: `unknown option --${flag}` };
    if (kind === 'boolean') {
      options[flag] = true;
      continue;
    }
    const value = inlineValue ?? argv[++i];
    if (value === undefined || value === '') return { error: `option --${flag} needs a value` };
    options[flag] = value;
  }
  return { options, positional };
}

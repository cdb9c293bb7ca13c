import { PolicyError } from '../../policy/errors.ts';
import { parseOptions, usageError } from './commands.ts';

type Output = NodeJS.WritableStream;

export const POLICY_USAGE = `Usage: wardgate policy <subcommand>

Subcommands:
  validate FILE...                 Check policy files; print every error as file:line:column
  test PATH...                     Run the *.tests.yaml policy tests under each path
  explain --policy FILE [options]  Show how each rule fares for one request and the decision
  keygen --out DIR                 Create Ed25519 and ML-DSA-65 key pairs for signing policies
  sign --key-dir DIR FILE...       Write a detached signature FILE.sig for each policy file

Run "wardgate policy <subcommand> --help" for a subcommand's options.
`;

const HELP: Record<string, string> = {
  validate: 'Usage: wardgate policy validate FILE...\n\nValidates each policy file and prints every error as file:line:column. Exits 1 when any file is invalid.\n',
  test: 'Usage: wardgate policy test PATH...\n\nRuns every *.tests.yaml file under each directory (or each file given). Each test file names the policy it tests and lists cases: a request context and the expected action and rule. Prints PASS or FAIL per case and exits 1 when any case fails or a file has errors.\n',
  keygen: 'Usage: wardgate policy keygen --out DIR\n\nWrites policy-ed25519.key/.pub and policy-ml-dsa-65.key/.pub into DIR. Private keys get mode 0600; existing keys are never overwritten.\n',
  sign: 'Usage: wardgate policy sign --key-dir DIR FILE...\n\nSigns each policy file with both private keys in DIR and writes FILE.sig next to it.\n',
};

/** Runs `wardgate policy <subcommand>` and returns the exit code. */
export async function runPolicyCommand(argv: string[], out: Output, err: Output, stdin: NodeJS.ReadableStream = process.stdin): Promise<number> {
  const [subcommand, ...rest] = argv;
  if (subcommand === undefined) return usageError(err, 'unknown policy subcommand ""; expected validate, test, explain, keygen or sign');
  if (subcommand === '--help' || subcommand === '-h') {
    out.write(POLICY_USAGE);
    return 0;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    if (subcommand === 'explain') out.write((await import('../../policy/cli/explain-command.ts')).EXPLAIN_USAGE);
    else if (HELP[subcommand] !== undefined) out.write(HELP[subcommand]!);
    else return usageError(err, `unknown policy subcommand ${JSON.stringify(subcommand)}; expected validate, test, explain, keygen or sign`);
    return 0;
  }

  try {
    return await runSubcommand(subcommand, rest, out, err, stdin);
  } catch (error) {
    if (!(error instanceof PolicyError)) throw error;
    err.write(`wardgate policy ${subcommand}: ${error.message} [${error.code}]\n`);
    return 1;
  }
}

async function runSubcommand(subcommand: string, argv: string[], out: Output, err: Output, stdin: NodeJS.ReadableStream): Promise<number> {
  switch (subcommand) {
    case 'validate': {
      if (argv.length === 0) return usageError(err, 'missing policy file; usage: wardgate policy validate FILE...');
      return (await import('../../policy/cli/validate.ts')).runPolicyValidate(argv, out, err);
    }
    case 'test': {
      if (argv.length === 0) return usageError(err, 'missing test directory; usage: wardgate policy test PATH...');
      return (await import('../../policy/cli/test-command.ts')).runPolicyTest(argv, out, err);
    }
    case 'explain': {
      const explain = await import('../../policy/cli/explain-command.ts');
      const parsed = parseOptions(argv, explain.EXPLAIN_OPTIONS);
      if ('error' in parsed) return usageError(err, `${parsed.error}; run "wardgate policy explain --help" for the options`);
      if (parsed.positional.length > 0) return usageError(err, `unexpected argument ${JSON.stringify(parsed.positional[0])}; give the policy with --policy FILE`);
      return explain.runPolicyExplain(parsed.options, stdin as NodeJS.ReadableStream & import('node:stream').Readable, out, err);
    }
    case 'keygen': {
      const parsed = parseOptions(argv, { out: 'string' });
      if ('error' in parsed) return usageError(err, `${parsed.error}; usage: wardgate policy keygen --out DIR`);
      if (typeof parsed.options.out !== 'string' || parsed.positional.length > 0) return usageError(err, 'expected exactly --out DIR; usage: wardgate policy keygen --out DIR');
      const files = await (await import('../../policy/signing/keygen.ts')).generatePolicyKeys(parsed.options.out);
      for (const file of files) out.write(`wrote ${file}\n`);
      out.write('Keep the .key files secret; configure the .pub files under policy_signing.\n');
      return 0;
    }
    case 'sign': {
      const parsed = parseOptions(argv, { 'key-dir': 'string' });
      if ('error' in parsed) return usageError(err, `${parsed.error}; usage: wardgate policy sign --key-dir DIR FILE...`);
      if (typeof parsed.options['key-dir'] !== 'string' || parsed.positional.length === 0) return usageError(err, 'expected --key-dir DIR and at least one policy file; usage: wardgate policy sign --key-dir DIR FILE...');
      const { signPolicyFile } = await import('../../policy/signing/sign-file.ts');
      for (const file of parsed.positional) out.write(`wrote ${await signPolicyFile(parsed.options['key-dir'], file)}\n`);
      return 0;
    }
    default:
      return usageError(err, `unknown policy subcommand ${JSON.stringify(subcommand)}; expected validate, test, explain, keygen or sign`);
  }
}

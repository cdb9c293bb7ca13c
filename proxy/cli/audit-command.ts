import { access } from 'node:fs/promises';
import path from 'node:path';
import { AuditError } from '../audit/errors.ts';
import { KEY_FILES, readTrustedPublicKeys } from '../audit/keys.ts';
import { formatFinding, verifyAuditDir } from '../audit/verify.ts';
import { parseOptions, usageError } from './commands.ts';

const USAGE = `Usage: wardgate audit verify DIR [--public-key FILE] [--open]

Verifies the audit trail in DIR: sequence numbers, hash links within and across files,
the file sequence, and the Ed25519 and ML-DSA-65 signatures of every checkpoint. Prints
one line per finding as file:line: CODE: message, then a summary.

Options:
  --public-key FILE   trusted public keys (audit-public-keys.json); default DIR/keys/${KEY_FILES.publicKeys}
  --open              accept a trail that ends without a final checkpoint (a running instance)

Exit status: 0 when the trail is intact, 1 on any finding, 2 on a usage error.
`;

/** Runs `wardgate audit ...`; returns 0 when clean, 1 on findings, 2 on usage errors. */
export async function runAuditCommand(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  if (argv[0] === '--help' || argv[0] === '-h') {
    out.write(USAGE);
    return 0;
  }
  if (argv[0] !== 'verify') return usageError(err, `unknown audit subcommand ${JSON.stringify(argv[0] ?? '')}; expected "audit verify DIR"`);

  const parsed = parseOptions(argv.slice(1), { 'public-key': 'string', open: 'boolean', help: 'boolean' });
  if ('error' in parsed) return usageError(err, `${parsed.error}; run "wardgate audit --help"`);
  if (parsed.options.help) {
    out.write(USAGE);
    return 0;
  }
  if (parsed.positional.length === 0) return usageError(err, 'missing audit folder; usage: wardgate audit verify DIR [--public-key FILE]');
  if (parsed.positional.length > 1) return usageError(err, `unexpected argument ${JSON.stringify(parsed.positional[1])}; verify one folder at a time`);

  const dir = parsed.positional[0]!;
  try {
    await access(dir);
  } catch {
    return usageError(err, `audit folder ${dir} not found; pass the folder set as audit.dir`);
  }
  const keyFile = typeof parsed.options['public-key'] === 'string' ? parsed.options['public-key'] : path.join(dir, 'keys', KEY_FILES.publicKeys);

  let trustedKeys;
  try {
    trustedKeys = await readTrustedPublicKeys(keyFile);
  } catch (error) {
    if (error instanceof AuditError) return usageError(err, error.message);
    throw error;
  }

  const report = await verifyAuditDir(dir, { trustedKeys, allowOpenTail: parsed.options.open === true });
  for (const finding of report.findings) out.write(`${formatFinding(finding)}\n`);
  for (const note of report.notes) out.write(`${formatFinding(note)} (note)\n`);
  const verdict = report.findings.length === 0 ? 'intact' : `${report.findings.length} finding${report.findings.length === 1 ? '' : 's'}`;
  out.write(`${dir}: ${report.instances} instance(s), ${report.files} file(s), ${report.records} records, ${report.checkpoints} checkpoints: ${verdict}\n`);
  return report.findings.length === 0 ? 0 : 1;
}

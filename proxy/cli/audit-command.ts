import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { AuditError } from '../audit/errors.ts';
import { listAuditFiles } from '../audit/files.ts';
import { headStateInstances } from '../audit/head.ts';
import { KEY_FILES, readTrustedPublicKeys, type AuditPublicKeys } from '../audit/keys.ts';
import { formatFinding, verifyAuditDir } from '../audit/verify.ts';
import { parseOptions, usageError } from './commands.ts';

const USAGE = `Usage: wardgate audit verify DIR [--public-key FILE] [--open]

Verifies the audit trail in DIR: sequence numbers, hash links within and across files,
the file sequence, and the Ed25519 and ML-DSA-65 signatures of every checkpoint. Prints
one line per finding as file:line: CODE: message, then a summary.

Options:
  --public-key FILE   trusted public keys (audit-public-keys.json); default DIR/keys/${KEY_FILES.publicKeys}
  --open              accept a trail that ends without a final checkpoint (a running instance)

Exit status: 0 when the trail is intact, 1 on any finding (also when DIR holds no trail
files), 2 on a usage error (DIR missing or not a folder, unreadable key file).
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
  let names: string[];
  try {
    if (!(await stat(dir)).isDirectory()) return usageError(err, `audit path ${dir} is not a folder; pass the folder set as audit.dir`);
    names = await readdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return usageError(err, `audit folder ${dir} not found; pass the folder set as audit.dir`);
    return usageError(err, `cannot read the audit folder ${dir} (${code ?? String(error)}); check its owner and permissions`);
  }

  // A folder without trail files is reported as such, before the default key file that it
  // usually also lacks. A key file passed with --public-key is always read.
  const explicitKeyFile = typeof parsed.options['public-key'] === 'string' ? parsed.options['public-key'] : null;
  let trustedKeys: AuditPublicKeys[] = [];
  if (explicitKeyFile !== null || (await listAuditFiles(dir)).size > 0 || headStateInstances(names).length > 0) {
    const keyFile = explicitKeyFile ?? path.join(dir, 'keys', KEY_FILES.publicKeys);
    try {
      trustedKeys = await readTrustedPublicKeys(keyFile);
    } catch (error) {
      if (error instanceof AuditError) return usageError(err, error.message);
      throw error;
    }
  }

  const report = await verifyAuditDir(dir, { trustedKeys, allowOpenTail: parsed.options.open === true });
  for (const finding of report.findings) out.write(`${formatFinding(finding)}\n`);
  for (const note of report.notes) out.write(`${formatFinding(note)} (note)\n`);
  const verdict = report.findings.length === 0 ? 'intact' : `${report.findings.length} finding${report.findings.length === 1 ? '' : 's'}`;
  out.write(`${dir}: ${report.instances} instance(s), ${report.files} file(s), ${report.records} records, ${report.checkpoints} checkpoints: ${verdict}\n`);
  return report.findings.length === 0 ? 0 : 1;
}

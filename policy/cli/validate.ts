import { PolicyError, PolicyValidationError, formatIssue } from '../errors.ts';
import { loadPolicyFile } from '../load-file.ts';
import type { CompilePolicyOptions } from '../compile.ts';

/**
 * Runs `wardgate policy validate FILE...`: checks every file and prints
 * `OK <file> (<n> rules, sha256 <hash>)` to `out` for a valid one and one line per
 * problem to `err` for an invalid one. Returns the exit code: 0 when all files are
 * valid, 1 when any is not, 2 when no file was given.
 */
export async function runPolicyValidate(
  files: readonly string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
  options: CompilePolicyOptions = {},
): Promise<number> {
  if (files.length === 0) {
    err.write('usage: wardgate policy validate FILE...: expected at least one policy file, got none\n');
    return 2;
  }

  let failed = false;
  for (const file of files) {
    if (/\.tests\.ya?ml$/i.test(file)) {
      // A glob such as policy/examples/*.yaml picks up the test files beside the policies.
      out.write(`SKIP ${file} (a policy test file; run it with: wardgate policy test ${file})\n`);
      continue;
    }
    try {
      const policy = await loadPolicyFile(file, options);
      const count = policy.ruleIds.length;
      out.write(`OK ${file} (${count} rule${count === 1 ? '' : 's'}, sha256 ${policy.hash})\n`);
    } catch (error) {
      failed = true;
      err.write(describeFailure(error));
    }
  }

  return failed ? 1 : 0;
}

/** Formats a load failure as the lines the CLI prints; rethrows anything that is not a policy error. */
export function describeFailure(error: unknown): string {
  if (!(error instanceof PolicyError)) throw error;
  if (error instanceof PolicyValidationError) return error.issues.map((issue) => `${formatIssue(issue)}\n`).join('');

  return `${error.message} [${error.code}]\n`;
}

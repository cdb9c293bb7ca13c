import { findTestFiles, runTestFile } from '../testing/run-tests.ts';

/**
 * Runs `wardgate policy test PATH...`: every `*.tests.yaml` under the paths, each case
 * printed as `PASS` or `FAIL` with file:line:column. Returns the exit code: 0 when every
 * case passed, 1 when a case failed, a file had errors or no test file was found.
 */
export async function runPolicyTest(paths: readonly string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  let files: string[];
  try {
    files = await findTestFiles(paths);
  } catch (error) {
    err.write(`wardgate policy test: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? `path not found: ${(error as NodeJS.ErrnoException).path}` : (error as Error).message}; give a directory or a *.tests.yaml file\n`);
    return 1;
  }
  if (files.length === 0) {
    err.write(`wardgate policy test: no *.tests.yaml files found in ${paths.join(', ')}; add a test file next to the policy it tests\n`);
    return 1;
  }

  let passed = 0;
  let failed = 0;
  let broken = 0;
  for (const file of files) {
    const result = await runTestFile(file);
    for (const line of result.errors.flatMap((error) => error.split('\n'))) err.write(`ERROR ${line}\n`);
    if (result.errors.length > 0) broken++;
    for (const testCase of result.cases) {
      if (testCase.passed) {
        passed++;
        out.write(`PASS ${file}: ${testCase.name}\n`);
      } else {
        failed++;
        out.write(`FAIL ${file}:${testCase.line}:${testCase.column}: ${testCase.name}: ${testCase.message}\n`);
      }
    }
  }

  out.write(`${passed} passed, ${failed} failed${broken > 0 ? `, ${broken} file${broken === 1 ? '' : 's'} with errors` : ''}\n`);
  return failed > 0 || broken > 0 ? 1 : 0;
}

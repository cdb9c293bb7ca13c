import { ConfigError } from '../config/errors.ts';
import { loadConfigFile } from '../config/config.ts';
import { PolicyValidationError, formatIssue } from '../../policy/index.ts';
import { startWardgate } from '../runtime.ts';
import { parseOptions, usageError } from './commands.ts';
import { untilStopped } from './until-stopped.ts';

const USAGE = `Usage: wardgate start --config FILE

Starts Wardgate with the configuration in FILE (YAML). Secrets come from the environment
variables the file names (default WARDGATE_OIDC_CLIENT_SECRET and WARDGATE_PATIENT_KEY).
`;

export async function runStartCommand(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const parsed = parseOptions(argv, { config: 'string', help: 'boolean' });
  if ('error' in parsed) return usageError(err, `${parsed.error}; run "wardgate start --help"`);
  if (parsed.options.help) {
    out.write(USAGE);
    return 0;
  }
  if (parsed.positional.length > 0) return usageError(err, `unexpected argument ${JSON.stringify(parsed.positional[0])}; run "wardgate start --help"`);
  if (typeof parsed.options.config !== 'string') return usageError(err, 'missing --config FILE; run "wardgate start --help"');

  let running;
  try {
    const config = await loadConfigFile(parsed.options.config);
    running = await startWardgate(config);
  } catch (error) {
    if (error instanceof ConfigError) {
      err.write(`wardgate: invalid configuration:\n${error.message}\n`);
      return 1;
    }
    if (error instanceof PolicyValidationError) {
      err.write(`wardgate: invalid policy:\n${error.issues.map(formatIssue).join('\n')}\n`);
      return 1;
    }
    const code = (error as { code?: string }).code;
    if (code === 'EADDRINUSE') {
      err.write(`wardgate: port ${(error as { port?: number }).port} is already in use; stop the program using it or change listen.port in the configuration\n`);
      return 1;
    }
    err.write(`wardgate: failed to start${code ? ` (${code})` : ''}: ${(error as Error).message}\n`);
    return 1;
  }

  const stopping = untilStopped(err);
  await stopping.stopped;
  try {
    await running.close();
  } catch (error) {
    err.write(`wardgate: stopped with errors: ${(error as Error).message}\n`);
    return 1;
  }
  return stopping.exitCode();
}

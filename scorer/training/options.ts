import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * Parses the command line with `node:util` parseArgs, or exits with status 2 after printing
 * its message (an unknown option, a missing value) and the usage text. `--help` or `-h`
 * prints the usage text and exits with status 0.
 */
export function parseCommandLine<T extends ParseArgsConfig>(config: T, usage: string): ReturnType<typeof parseArgs<T>> {
  const args = config.args ?? process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  try {
    return parseArgs(config);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${usage}\n`);
    process.exit(2);
  }
}

/** Parses an integer command-line option, or exits with status 2 and a message naming it. */
export function parseIntegerOption(option: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    process.stderr.write(`Invalid option ${option}: expected an integer from ${min} to ${max}, received ${JSON.stringify(text)}.\n`);
    process.exit(2);
  }

  return value;
}

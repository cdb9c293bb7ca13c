/** Parses an integer command-line option, or exits with status 2 and a message naming it. */
export function parseIntegerOption(option: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    process.stderr.write(`Invalid option ${option}: expected an integer from ${min} to ${max}, received ${JSON.stringify(text)}.\n`);
    process.exit(2);
  }

  return value;
}

#!/usr/bin/env node
// Entry point of the `wardgate` command. Each subcommand's module is loaded only when used,
// so `wardgate policy validate` does not load the ONNX runtime.
import { runCli } from './commands.ts';

// A reader that stops early, such as `wardgate review list | head`, closes the pipe. The output
// is no longer wanted then, so the command ends quietly, as other command-line tools do.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(process.exitCode ?? 0);
});

process.exitCode = await runCli(process.argv.slice(2), process.stdout, process.stderr);

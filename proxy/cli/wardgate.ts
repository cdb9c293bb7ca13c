#!/usr/bin/env node
// Entry point of the `wardgate` command. Each subcommand's module is loaded only when used,
// so `wardgate policy validate` does not load the ONNX runtime.
import { runCli } from './commands.ts';

process.exitCode = await runCli(process.argv.slice(2), process.stdout, process.stderr);

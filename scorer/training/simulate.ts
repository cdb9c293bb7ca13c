import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { parseCommandLine, parseIntegerOption } from './options.ts';
import { toReplayRecord } from './replay-format.ts';
import { simulateTraffic } from './simulator.ts';

const USAGE = `usage: npm run simulate -- --out FILE.jsonl --panel FILE.json [--seed N] [--days N] [--scale X]
  --out FILE.jsonl    replay log to write (JSON Lines, the input of wardgate replay)
  --panel FILE.json   care relationships, patient flags and hospital stays to write
  --seed N            simulation seed, 0 to 4294967295 (default 99)
  --days N            simulated days, 1 to 365 (default 14)
  --scale X           factor for the users per role (1 gives 36 users), above 0 and at most 20 (default 1)`;

/**
 * Writes a simulation as replay JSON Lines and its care relationships and patient flags as a
 * panel file (`{ practitioners: { user: [patientId] }, patients: { id: { vip, employee } } }`).
 * Both files are written to a temporary name first, so a failure leaves no half-written file.
 */
function main(): void {
  const { values } = parseCommandLine({
    options: {
      out: { type: 'string' },
      panel: { type: 'string' },
      // Not a training (1, 5, 9, 13), validation or test seed, so the output is held-out traffic.
      seed: { type: 'string', default: '99' },
      days: { type: 'string', default: '14' },
      scale: { type: 'string', default: '1' },
    },
    strict: true,
  }, USAGE);
  if (values.out === undefined || values.panel === undefined) {
    process.stderr.write(`Missing option ${values.out === undefined ? '--out' : '--panel'}.\n${USAGE}\n`);
    process.exit(2);
  }
  const seed = parseIntegerOption('--seed', values.seed, 0, 2 ** 32 - 1);
  const days = parseIntegerOption('--days', values.days, 1, 365);
  const scale = Number(values.scale);
  if (!(scale > 0 && scale <= 20)) {
    process.stderr.write(`Invalid option --scale: expected a number above 0 and at most 20, received ${JSON.stringify(values.scale)}.\n`);
    process.exit(2);
  }

  const { records, panel } = simulateTraffic({ seed, days, scale });
  writeAtomically(resolve(values.out), records.map((record) => JSON.stringify(toReplayRecord(record))).join('\n') + '\n');
  writeAtomically(resolve(values.panel), JSON.stringify(panel, null, 1) + '\n');
  process.stdout.write(`wrote ${records.length} records to ${values.out} and the panel to ${values.panel} (seed ${seed}, ${days} days)\n`);
}

function writeAtomically(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main();
}

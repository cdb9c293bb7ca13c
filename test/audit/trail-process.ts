// Child process of write-failure.test.ts: opens an audit trail in the folder given as the
// first argument and follows one command per stdin line, so that the test can run it under a
// file size limit. It logs as JSON to stderr and replies with one JSON line on stdout:
//   append N  ->  {"event":"appended","seq":...}
//   health    ->  {"event":"health","health":{...}}
//   close     ->  {"event":"closed","seq":...} or {"event":"close_failed","seq":...,"code":...,"message":...}
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { appendDecisions, openTestTrail } from './helpers.ts';

const dir = process.argv[2]!;
const trail = await openTestTrail(dir, { logger: pino(pino.destination({ dest: 2, sync: true })) });
const reply = (message: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(message)}\n`);
let appended = 0;

reply({ event: 'ready', pid: process.pid });
for await (const line of createInterface({ input: process.stdin })) {
  const [command, argument] = line.split(' ');
  if (command === 'append') {
    appendDecisions(trail, Number(argument), appended);
    appended += Number(argument);
    reply({ event: 'appended', seq: trail.seq });
  } else if (command === 'health') {
    reply({ event: 'health', health: trail.health() });
  } else if (command === 'close') {
    try {
      await trail.close();
      reply({ event: 'closed', seq: trail.seq });
    } catch (error) {
      reply({ event: 'close_failed', seq: trail.seq, code: (error as { code?: string }).code, message: (error as Error).message });
    }
    break;
  }
}

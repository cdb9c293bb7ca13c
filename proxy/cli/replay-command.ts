import { randomBytes } from 'node:crypto';
import { access, constants, lstat, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { loadPolicyFile, PolicyValidationError, formatIssue } from '../../policy/index.ts';
import { MemoryBaselineStore, RedisBaselineStore, createRedisClient, createScorer, type Scorer, type UnexplainedFloorSettings } from '../../scorer/index.ts';
import { formatSummary, summarize } from '../../scorer/evaluation/metrics.ts';
import { watchPanelFile } from '../../scorer/care/panel-source.ts';
import type { CareRelationshipSource } from '../../scorer/care/source.ts';
import { PatientPseudonymizer } from '../../scorer/features/patient.ts';
import { compilePatientPaths } from '../../scorer/features/patient-paths.ts';
import { ConfigError } from '../config/errors.ts';
import { decodeKey, loadConfigFile } from '../config/config.ts';
import type { RouteConfig } from '../routing/router.ts';
import { createRouter } from '../routing/router.ts';
import { readAccessLog } from '../replay/access-log.ts';
import { replayRecords, type ReplayedDecision } from '../replay/replay.ts';
import { parseOptions, usageError } from './commands.ts';

const REPOSITORY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DEFAULT_MAX_ERRORS = 100;

const USAGE = `Usage: wardgate replay FILE [options]

Runs a recorded access log (JSON Lines) through Wardgate's live decision path: path
normalization, routing, features and baselines, the model, fail modes and the policy.
Records are decided in time order. Prints one JSON decision per record and, when records
carry labels, one summary line.

Options:
  --config FILE        take routes, policy, model, patient key, scorer.unexplained_floor and scorer.patient_paths from a Wardgate configuration
  --policy FILE        policy file (default policy/examples/demo.yaml); ignored with --config
  --model FILE         ONNX model (default scorer/models/risk-v4.onnx); ignored with --config
  --care-panel FILE    care-relationship panel file (YAML or JSON) for care features
  --redis URL          keep baselines in this Redis instead of in process
  --redis-prefix P     key prefix of the replay's baselines in Redis (default wg:replay:)
  --out FILE           write decisions to FILE instead of standard output
  --max-errors N       stop before deciding anything when more than N lines are invalid (default ${DEFAULT_MAX_ERRORS})

Invalid lines are reported on standard error with their line number and field and are
skipped. The exit status is 2 for a usage error, 1 when any line was skipped or replay
failed, 0 otherwise. With --out, the summary line is also printed on standard error.

The patient pseudonym key comes from the configuration, or from WARDGATE_PATIENT_KEY
(hex or base64, at least 32 bytes). Without either, a random key is used for the run;
--redis requires a key so that pseudonyms in Redis stay comparable between runs.
`;

type Output = NodeJS.WritableStream;

interface ReplaySetup {
  readonly routes: readonly RouteConfig[];
  readonly policyFile: string;
  readonly modelPath: string;
  readonly patientKey: Uint8Array | null;
  /** The configuration's `scorer.unexplained_floor`; absent without --config (the scorer's default). */
  readonly unexplainedFloor?: UnexplainedFloorSettings;
  /** The configuration's `scorer.patient_paths`; absent without --config (FHIR forms only). */
  readonly patientPaths?: readonly string[];
}

/** Runs `wardgate replay`; returns 0 on success, 1 when lines were skipped or the run failed, 2 on a usage error. */
export async function runReplayCommand(argv: string[], out: Output, err: Output): Promise<number> {
  const parsed = parseOptions(argv, {
    config: 'string', policy: 'string', model: 'string', 'care-panel': 'string', redis: 'string',
    'redis-prefix': 'string', out: 'string', 'max-errors': 'string', help: 'boolean',
  });
  if ('error' in parsed) return usageError(err, `${parsed.error}; run "wardgate replay --help"`);
  if (parsed.options.help) {
    out.write(USAGE);
    return 0;
  }

  const options = parsed.options as Record<string, string | undefined>;
  if (parsed.positional.length === 0) return usageError(err, 'missing access log FILE; usage: wardgate replay FILE [options]');
  if (parsed.positional.length > 1) return usageError(err, `unexpected argument ${JSON.stringify(parsed.positional[1])}; replay reads one FILE`);
  const maxErrors = options['max-errors'] === undefined ? DEFAULT_MAX_ERRORS : Number(options['max-errors']);
  if (!Number.isInteger(maxErrors) || maxErrors < 0) return usageError(err, `invalid --max-errors ${JSON.stringify(options['max-errors'])}; expected a whole number of 0 or more`);
  const outProblem = options.out === undefined ? null : await checkOutputPath(options.out);
  if (outProblem !== null) {
    err.write(`wardgate replay: ${outProblem}\n`);
    return 1;
  }

  const closers: Array<() => Promise<unknown>> = [];
  try {
    const setup = await loadSetup(options, err);
    if (setup === null) return 1;

    if (options.redis !== undefined && setup.patientKey === null) {
      err.write('wardgate replay: --redis needs a stable patient key; set WARDGATE_PATIENT_KEY (openssl rand -hex 32) or use --config\n');
      return 1;
    }
    const patientKey = setup.patientKey ?? randomBytes(32);
    if (setup.patientKey === null) {
      const reason = process.env.WARDGATE_PATIENT_KEY ? 'is shorter than 32 bytes of hex or base64' : 'is not set';
      err.write(`wardgate replay: WARDGATE_PATIENT_KEY ${reason}; using a random patient key for this run\n`);
    }

    const file = parsed.positional[0]!;
    const inputProblem = await checkInputPath(file);
    if (inputProblem !== null) {
      err.write(`wardgate replay: ${inputProblem}\n`);
      return 1;
    }
    const log = await readAccessLog(file, maxErrors);
    for (const error of log.errors) err.write(`wardgate replay: ${error.message}\n`);
    if (log.records.length === 0 && log.errors.length === 0) {
      err.write(`wardgate replay: ${file} contains no records; nothing was decided. Give a JSON Lines access log with one record per line\n`);
      return 1;
    }
    if (log.stoppedAtLine !== null) {
      err.write(
        `wardgate replay: more than --max-errors ${maxErrors} invalid lines by line ${log.stoppedAtLine}; reading stopped and nothing was decided. ` +
          'Check that FILE is a Wardgate access log.\n',
      );
      return 1;
    }

    const policy = await loadPolicyFile(setup.policyFile, { routeIds: setup.routes.map((route) => route.id) });
    const careSource = options['care-panel'] === undefined ? undefined : await openPanel(options['care-panel'], patientKey);
    if (careSource) closers.push(() => careSource.close?.() ?? Promise.resolve());
    const store = await openBaselines(options, closers);
    const scorer: Scorer = await createScorer({
      store,
      modelPath: setup.modelPath,
      patientKey,
      ...(careSource ? { careSource } : {}),
      ...(setup.unexplainedFloor ? { unexplainedFloor: setup.unexplainedFloor } : {}),
      ...(setup.patientPaths ? { patientPaths: setup.patientPaths } : {}),
    });
    closers.push(() => scorer.close());
    const patientPaths = compilePatientPaths(setup.patientPaths ?? [], 'scorer.patient_paths');

    const lines: string[] = [];
    const emit = (decision: ReplayedDecision) => {
      const text = `${JSON.stringify(decision)}\n`;
      if (options.out === undefined) out.write(text);
      else lines.push(text);
    };
    const outcome = await replayRecords(log.records, { scorer, patientPaths, policy, router: createRouter(setup.routes), log: warnTo(err), settle: async () => store.settle?.() }, emit);
    for (const skipped of outcome.skipped) err.write(`wardgate replay: line ${skipped.line}: skipped: ${skipped.reason}\n`);

    if (outcome.decisions.some((decision) => decision.label !== undefined)) {
      const summary = `${formatSummary(summarize(outcome.decisions))}\n`;
      if (options.out === undefined) {
        out.write(summary);
      } else {
        lines.push(summary);
        // The decisions go to the file; the summary also goes to the terminal.
        err.write(summary);
      }
    }
    if (options.out !== undefined) await writeAtomically(options.out, lines.join(''));

    return log.errors.length + outcome.skipped.length > 0 ? 1 : 0;
  } catch (error) {
    err.write(`wardgate replay: ${describeFailure(error)}\n`);
    return 1;
  } finally {
    for (const close of closers.reverse()) await close().catch(() => {});
  }
}

async function loadSetup(options: Record<string, string | undefined>, err: Output): Promise<ReplaySetup | null> {
  if (options.config === undefined) {
    const { demoRoutes } = await import('../../demo/demo-stack.ts');
    return {
      routes: demoRoutes('http://127.0.0.1:1'),
      policyFile: path.resolve(options.policy ?? path.join(REPOSITORY, 'policy/examples/demo.yaml')),
      modelPath: path.resolve(options.model ?? path.join(REPOSITORY, 'scorer/models/risk-v4.onnx')),
      patientKey: decodeKey(process.env.WARDGATE_PATIENT_KEY),
    };
  }

  if (options.policy !== undefined || options.model !== undefined) {
    err.write('wardgate replay: --policy and --model are ignored with --config, which names both\n');
  }
  // Replay never contacts the IdP, so the OIDC client secret the configuration names may be unset.
  const secretVariable = await oidcSecretVariable(options.config);
  const env = { ...process.env, [secretVariable]: process.env[secretVariable] ?? 'not-used-by-replay' };
  // Replay serves nothing, so only the files it reads must exist.
  const config = await loadConfigFile(options.config, env, { files: ['policy', 'model'] });

  const floor = config.scorer?.unexplained_floor;
  const patientPaths = config.scorer?.patient_paths;

  return {
    routes: config.routes,
    policyFile: config.policy,
    modelPath: config.model,
    patientKey: config.patient_key,
    ...(floor === undefined ? {} : { unexplainedFloor: { scale: floor.scale, usualLimit: floor.usual_limit, max: floor.max } }),
    ...(patientPaths === undefined ? {} : { patientPaths }),
  };
}

async function oidcSecretVariable(file: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const text = await readFile(file, 'utf8').catch(() => '');
  const name = parseDocument(text).getIn(['oidc', 'client_secret_env']);

  return typeof name === 'string' && name !== '' ? name : 'WARDGATE_OIDC_CLIENT_SECRET';
}

async function openPanel(file: string, patientKey: Uint8Array): Promise<CareRelationshipSource> {
  return watchPanelFile(file, new PatientPseudonymizer(patientKey), { pollMs: 0, setting: '--care-panel' });
}

async function openBaselines(options: Record<string, string | undefined>, closers: Array<() => Promise<unknown>>): Promise<MemoryBaselineStore | RedisBaselineStore> {
  if (options.redis === undefined) return new MemoryBaselineStore();

  const redis = await createRedisClient(options.redis);
  closers.push(() => redis.quit().catch(() => redis.disconnect()));

  return new RedisBaselineStore(redis, { prefix: `${options['redis-prefix'] ?? 'wg:replay:'}bl:` });
}

/** Returns why the access log `file` cannot be read, or null. A missing file is reported when it is read. */
async function checkInputPath(file: string): Promise<string | null> {
  const info = await stat(file).catch(() => null);
  if (info?.isDirectory()) return `${file} is a folder (EISDIR); give the access log FILE`;
  // A device such as /dev/zero never ends; a pipe (/dev/stdin from a command) does.
  if (info?.isCharacterDevice() || info?.isBlockDevice()) return `${file} is a device, not a file; give the access log FILE or pipe it into /dev/stdin`;
  if (info?.isFile()) {
    const handle = await open(file, 'r');
    try {
      const { buffer, bytesRead } = await handle.read(Buffer.alloc(2), 0, 2, 0);
      const start = buffer.subarray(0, bytesRead);
      if (start.equals(Buffer.from([0xff, 0xfe])) || start.equals(Buffer.from([0xfe, 0xff]))) return `${file} is UTF-16 text; save the access log as UTF-8`;
    } finally {
      await handle.close();
    }
  }

  return null;
}

/**
 * Returns why decisions cannot be written to `file`, or null. Checked before anything is
 * decided, so that a wrong --out fails at once and names the path as the user gave it.
 */
async function checkOutputPath(file: string): Promise<string | null> {
  const folder = path.dirname(path.resolve(file));
  const existing = await lstat(file).catch(() => null);
  if (existing?.isDirectory()) return `${file} is a folder (EISDIR); give a file name`;
  // The decisions replace FILE by a rename, which would replace a link, a FIFO or a device instead of writing through it.
  if (existing?.isSymbolicLink()) return `cannot write --out ${file}: it is a symbolic link; give the path of the file it points to`;
  if (existing && !existing.isFile()) return `cannot write --out ${file}: it is not a regular file (a FIFO, socket or device); give the path of a regular file`;

  const folderInfo = await stat(folder).catch((error: NodeJS.ErrnoException) => error);
  if (folderInfo instanceof Error) {
    const reason = folderInfo.code === 'ENOENT' ? 'does not exist (ENOENT)' : `cannot be read (${folderInfo.code ?? folderInfo.message})`;
    return `cannot write --out ${file}: the folder ${folder} ${reason}; create the folder or give another path`;
  }
  if (!folderInfo.isDirectory()) return `cannot write --out ${file}: ${folder} is not a folder; give another path`;

  const writable = await access(folder, constants.W_OK).then(() => true, () => false);
  if (!writable) return `cannot write --out ${file}: the folder ${folder} is not writable (EACCES); give another path`;

  return null;
}

/**
 * Writes to a temporary file in the same folder and renames it, so FILE is never half-written.
 * The temporary name is random and created exclusively ('wx'), so a link or FIFO planted at a
 * guessable name cannot redirect the write.
 */
async function writeAtomically(file: string, text: string): Promise<void> {
  const temporary = `${file}.${randomBytes(8).toString('hex')}.tmp`;
  try {
    await writeFile(temporary, text, { flag: 'wx' });
    const problem = await checkOutputPath(file);
    if (problem !== null) throw new Error(problem);
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

function warnTo(err: Output) {
  return {
    warn: (fields: Record<string, unknown>, message?: string) => {
      const cause = fields.err instanceof Error ? `: ${fields.err.message}` : '';
      err.write(`wardgate replay: route ${String(fields.route)}: ${message ?? 'warning'}${cause}\n`);
    },
  } as unknown as Parameters<typeof replayRecords>[1]['log'];
}

function describeFailure(error: unknown): string {
  if (error instanceof ConfigError) return `invalid configuration:\n${error.message}`;
  if (error instanceof PolicyValidationError) return `invalid policy:\n${error.issues.map(formatIssue).join('\n')}`;
  const code = (error as { code?: string }).code;
  // A failed --out write names the temporary file, so the suffix is removed to name the file the user gave.
  const file = (error as { path?: string }).path?.replace(/\.[0-9a-f]{16}\.tmp$/, '');
  if (code === 'EISDIR') return `${file ?? 'the path'} is a folder (EISDIR); give a file name`;
  if (code === 'ENOENT' || code === 'EACCES') return `cannot open ${file ?? 'the file'} (${code}); check the path`;

  return `${code ? `${code}: ` : ''}${(error as Error).message}`;
}

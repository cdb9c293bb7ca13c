import type { Readable } from 'node:stream';

import type { RuleTrace } from '../compile.ts';
import type { Decision } from '../decision.ts';
import { loadPolicyFile } from '../load-file.ts';
import { formatPath, readContext, type ContextProblem } from '../testing/context-input.ts';
import { describeFailure } from './validate.ts';

/** Maximum size of a request context read from stdin. */
const MAX_STDIN_BYTES = 1024 * 1024;

/** Options of `wardgate policy explain` that build the request context, and the context key each one sets. */
const CONTEXT_FLAGS = ['user', 'groups', 'auth-method', 'device', 'acr', 'route', 'host', 'path', 'query-params', 'method', 'ip', 'risk', 'time', 'tls-group', 'session-age', 'elevated-acr', 'break-glass-active'] as const;

export const EXPLAIN_USAGE = `Usage: wardgate policy explain --policy FILE [context options]
       wardgate policy explain --policy FILE < context.json

Decides one request with the policy and prints every rule in order: whether it matched
and, if not, the first reason why not. Without context options the request context is
read as JSON from stdin, in the format of a case's context in a *.tests.yaml file.

Options:
  --policy FILE          policy file to explain (required)
  --time-zone ZONE       time zone for a policy without time_zone (IANA name or +HH:MM)
  --user ID              subject of the caller; leave out for an anonymous request
  --groups A,B           groups of the caller, comma-separated
  --auth-method M        session, bearer or mtls (default session)
  --device ID            device identity of the caller
  --acr VALUE            acr of the caller's authentication
  --route ID             route id (default "default")
  --host HOST            request host (default localhost)
  --path PATH            normalized request path (default /)
  --query-params A,B     names of the query parameters, without values or FHIR
                         modifiers, comma-separated (default none)
  --method METHOD        HTTP method (default GET)
  --ip ADDRESS           client address (default 127.0.0.1)
  --risk NUMBER          risk score from 0 to 1 (default 0)
  --time ISO-8601        request time, such as 2025-01-06T10:00:00Z (default now)
  --tls-group GROUP      negotiated TLS group (default X25519MLKEM768)
  --session-age SECONDS  seconds since sign-in of the browser session
  --elevated-acr A,B     acr values the session is already stepped up to
  --break-glass-active   an emergency access claimed by this user is active
`;

/**
 * Runs `wardgate policy explain`. Returns the exit code: 0 after printing the explanation,
 * 1 when the policy or the context is invalid, 2 for a usage error.
 */
export async function runPolicyExplain(
  options: Record<string, string | boolean>,
  stdin: Readable,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
  now: () => number = Date.now,
): Promise<number> {
  const policyFile = options.policy;
  if (typeof policyFile !== 'string') {
    err.write('wardgate policy explain: missing --policy FILE; run "wardgate policy explain --help" for the options\n');
    return 2;
  }

  const usesFlags = CONTEXT_FLAGS.some((flag) => options[flag] !== undefined);
  let raw: unknown;
  if (usesFlags) {
    raw = contextFromFlags(options);
  } else {
    const text = await readAll(stdin, MAX_STDIN_BYTES);
    if (text === undefined) {
      err.write(`wardgate policy explain: stdin: expected a request context of at most ${MAX_STDIN_BYTES} bytes, got more; pipe one request context\n`);
      return 1;
    }
    try {
      raw = JSON.parse(text);
    } catch (error) {
      err.write(`wardgate policy explain: stdin: expected a request context as JSON, got ${text.trim() === '' ? 'no input' : `invalid JSON (${(error as Error).message})`}; pipe a JSON object or use the context options\n`);
      return 1;
    }
  }

  const problems: ContextProblem[] = [];
  const context = readContext(raw, usesFlags ? [] : ['stdin'], problems, now());
  if (context === undefined) {
    for (const problem of problems) err.write(`wardgate policy explain: ${usesFlags ? flagFor(problem.path) : formatPath(problem.path)}: expected ${problem.expected}, got ${problem.got}\n`);
    return 1;
  }

  let policy;
  try {
    policy = await loadPolicyFile(policyFile, typeof options['time-zone'] === 'string' ? { timeZone: options['time-zone'] } : {});
  } catch (error) {
    err.write(describeFailure(error));
    return 1;
  }

  const { decision, trace } = policy.explain(context);
  out.write(`policy ${policyFile} (sha256 ${policy.hash}), time zone ${policy.timeZone}\n`);
  out.write(`request ${context.request.method} ${context.request.path}${describeQueryParams(context.request.queryParams)} on route ${context.route.id} by ${context.principal === null ? 'an anonymous caller' : `${context.principal.subject} [${context.principal.groups.join(', ')}]`}, risk ${context.risk}, at ${new Date(context.time).toISOString()}\n\n`);
  const width = Math.max(...policy.ruleIds.map((id) => id.length), 4);
  policy.ruleIds.forEach((id, index) => {
    const step = trace.find((entry) => entry.rule === id);
    out.write(`${String(index + 1).padStart(3)}  ${id.padEnd(width)}  ${describeStep(step)}\n`);
  });
  out.write(`\n${describeDecision(decision)}`);

  return 0;
}

function describeStep(step: RuleTrace | undefined): string {
  if (step === undefined) return 'not tried (an earlier rule decided)';

  switch (step.outcome) {
    case 'matched':
      return 'MATCHED';
    case 'no-match':
      return `no match: ${step.detail ?? step.field ?? ''}`;
    case 'condition-false':
      return `no match: when is false (${step.detail ?? ''})`;
    case 'condition-error':
      return `no match: when failed to evaluate (${step.detail ?? ''})`;
    case 'already-elevated':
      return 'passed over: the session is already stepped up to the acr this rule requires';
  }
}

function describeQueryParams(names: readonly string[]): string {
  return names.length === 0 ? '' : ` with query parameters ${names.join(', ')}`;
}

function describeDecision(decision: Decision): string {
  const lines = [`decision: ${decision.action} by rule ${decision.rule}`];
  if (decision.stepUp !== undefined) lines.push(`step-up: acr_values ${decision.stepUp.acr_values}, max_age ${decision.stepUp.max_age}, ttl ${decision.stepUp.ttl} s`);
  if (decision.breakGlass !== undefined) lines.push(`break-glass: ttl ${decision.breakGlass.ttl} s, reason codes ${decision.breakGlass.reason_codes.join(', ')}`);
  for (const reason of decision.reasons) lines.push(`reason: ${reason}`);

  return `${lines.join('\n')}\n`;
}

/** Builds a context in the JSON shape from the command-line options. */
function contextFromFlags(options: Record<string, string | boolean>): Record<string, unknown> {
  const text = (flag: string) => (typeof options[flag] === 'string' ? (options[flag] as string) : undefined);
  const list = (flag: string) => text(flag)?.split(',').map((item) => item.trim()).filter((item) => item !== '');
  // A value that is not a number is passed on as text, so the context check names it.
  const number = (flag: string) => {
    const raw = text(flag);
    if (raw === undefined) return undefined;
    const value = Number(raw);
    return raw.trim() !== '' && Number.isFinite(value) ? value : raw;
  };
  const defined = (object: Record<string, unknown>) => Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined));

  const user = text('user');
  const principal = user === undefined ? null : defined({ subject: user, groups: list('groups') ?? [], method: text('auth-method'), device: text('device'), acr: text('acr') });
  const sessionAge = number('session-age');

  return defined({
    principal,
    route: defined({ id: text('route'), host: text('host') }),
    request: defined({ method: text('method'), host: text('host'), path: text('path'), query_params: list('query-params'), ip: text('ip') }),
    risk: number('risk'),
    time: text('time'),
    tls: defined({ group: text('tls-group') }),
    session: sessionAge === undefined ? undefined : { age_s: sessionAge },
    elevated_acr: list('elevated-acr'),
    break_glass_active: options['break-glass-active'] === true ? true : undefined,
  });
}

const FLAG_OF_PATH: Record<string, string> = {
  'principal.subject': '--user', 'principal.groups': '--groups', 'principal.method': '--auth-method', 'principal.device': '--device', 'principal.acr': '--acr',
  'route.id': '--route', 'route.host': '--host', 'request.host': '--host', 'request.path': '--path', 'request.query_params': '--query-params', 'request.method': '--method', 'request.ip': '--ip',
  risk: '--risk', time: '--time', 'tls.group': '--tls-group', 'session.age_s': '--session-age', session: '--session-age', elevated_acr: '--elevated-acr',
};

/** Returns the option that sets the value at `path`. An entry of a list (`request.query_params[2]`) maps to the list's option. */
function flagFor(path: readonly (string | number)[]): string {
  const key = formatPath(path);
  const listKey = typeof path.at(-1) === 'number' ? formatPath(path.slice(0, -1)) : key;
  return FLAG_OF_PATH[key] ?? FLAG_OF_PATH[listKey] ?? key;
}

/** Reads a stream as UTF-8 text, or returns `undefined` as soon as it passes `limit` bytes. */
async function readAll(stream: Readable, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    length += buffer.length;
    if (length > limit) return undefined;
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Options `wardgate policy explain` accepts, in the shape `parseOptions` takes. */
export const EXPLAIN_OPTIONS: Record<string, 'string' | 'boolean'> = {
  policy: 'string',
  'time-zone': 'string',
  help: 'boolean',
  ...Object.fromEntries(CONTEXT_FLAGS.map((flag) => [flag, flag === 'break-glass-active' ? 'boolean' : 'string'])),
};

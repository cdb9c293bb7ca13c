import { DEMO_KEY_PREFIX, resetDemoState, startDemoStack } from '../../demo/demo-stack.ts';
import { parseOptions, usageError } from './commands.ts';
import { untilStopped } from './until-stopped.ts';

const USAGE = `Usage: wardgate demo [--port N] [--idp-port N] [--reset]

Starts the demo clinical app, a demo OIDC provider and Wardgate in front of the app, with
development certificates in .wardgate/. Uses Redis at REDIS_URL (default
redis://127.0.0.1:6379), or an in-process store when Redis does not answer.

Options:
  --port N        Wardgate's HTTPS port (default 8443)
  --idp-port N    the demo IdP's HTTPS port (default 8444)
  --reset         first delete this folder's demo state in Redis (baselines, sessions,
                  break-glass grants and the review queue), so every user starts afresh
`;

export async function runDemoCommand(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const parsed = parseOptions(argv, { port: 'string', 'idp-port': 'string', reset: 'boolean', help: 'boolean' });
  if ('error' in parsed) return usageError(err, `${parsed.error}; run "wardgate demo --help"`);
  if (parsed.options.help) {
    out.write(USAGE);
    return 0;
  }
  if (parsed.positional.length > 0) return usageError(err, `unexpected argument ${JSON.stringify(parsed.positional[0])}; run "wardgate demo --help"`);
  const port = parsePort(parsed.options.port, 8443);
  const idpPort = parsePort(parsed.options['idp-port'], 8444);
  if (port === null) return usageError(err, `invalid --port ${JSON.stringify(parsed.options.port)}; expected a port number from 1 to 65535`);
  if (idpPort === null) return usageError(err, `invalid --idp-port ${JSON.stringify(parsed.options['idp-port'])}; expected a port number from 1 to 65535`);

  if (parsed.options.reset) {
    const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    try {
      const deleted = await resetDemoState(redisUrl);
      out.write(`Deleted ${deleted} Redis key(s) under ${DEMO_KEY_PREFIX}; the demo starts afresh.\n`);
    } catch (error) {
      err.write(`wardgate: --reset could not reach Redis at ${maskPassword(redisUrl)} (${(error as Error).message}); start Redis or run without --reset\n`);
      return 1;
    }
  }

  let stack;
  try {
    stack = await startDemoStack({ port, idpPort });
  } catch (error) {
    const { code, port: busyPort } = error as { code?: string; port?: number };
    if (code === 'WG_AUDIT_DIR_LOCKED') {
      err.write(`wardgate: another demo in this folder is writing the audit trail; stop it first (${(error as Error).message})\n`);
      return 1;
    }
    if (code !== 'EADDRINUSE') throw error;
    const option = busyPort === idpPort ? '--idp-port' : '--port';
    err.write(`wardgate: port ${busyPort} is already in use; stop the program using it or pick another port with ${option} (with npm: npm start -- ${option} N)\n`);
    return 1;
  }
  const accounts = stack.idp.accounts
    .map((account) => `  ${account.username.padEnd(10)} password ${account.password.padEnd(18)} groups ${account.groups.join(', ').padEnd(24)} TOTP secret ${account.totp_secret}`)
    .join('\n');
  out.write(`
Wardgate demo is running.

  Clinical app through Wardgate:  ${stack.url}/   (also https://ehr.localhost:${stack.wardgate.address.port}/)
  Demo IdP:                       ${stack.idp.issuer}
  Upstream app (direct, no auth): ${stack.appUrl}
  Store:                          ${stack.wardgate.storeKind === 'redis' ? `Redis at ${maskPassword(stack.config.redis.url)}, key prefix ${stack.config.redis.key_prefix}` : 'in-process (Redis did not answer; one instance only)'}
  Audit trail:                    ${stack.config.audit?.dir === undefined ? '(none)' : `${stack.config.audit.dir}
                                  check it with: npx wardgate audit verify ${stack.config.audit.dir} --open`}
  Review queue:                   ${stack.wardgate.storeKind === 'redis' ? `npx wardgate review list --redis ${maskPassword(stack.config.redis.url)} --prefix ${stack.config.redis.key_prefix}` : 'off (it needs Redis)'}
  Development CA (trust it or accept the warning): ${stack.certificates.paths.caCert}

Demo accounts (step-up asks for a TOTP code: add the secret to an authenticator app;
the secrets are new at every start, so enrol again after a restart):
${accounts}

Press Ctrl+C to stop.
`);

  const stopping = untilStopped(err);
  await stopping.stopped;
  try {
    await stack.close();
  } catch (error) {
    err.write(`wardgate: stopped with errors: ${(error as Error).message}\n`);
    return 1;
  }
  return stopping.exitCode();
}

function parsePort(value: string | boolean | undefined, fallback: number): number | null {
  if (value === undefined) return fallback;
  const port = Number(value);
  return Number.isInteger(port) && port >= 1 && port <= 65535 ? port : null;
}

/** Replaces the password of a URL by `***`, because the banner may end up in logs or screenshots. */
function maskPassword(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
}

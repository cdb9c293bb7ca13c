import { pino, type Logger, type DestinationStream } from 'pino';

/** Log fields that may hold a request target and so a patient id. */
const TARGET_FIELDS = ['url', 'target', 'path'] as const;

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  readonly level?: string;
  readonly destination?: DestinationStream;
  /**
   * Redactor that replaces patient ids in a request target with pseudonyms. When set, the
   * `url`, `target` and `path` fields of every log line pass through it. Without it they are
   * logged as given, so callers must then not log request targets.
   */
  readonly redactTarget?: { redactTarget(target: string): string } | null;
}

/**
 * Creates the process logger: JSON lines, with credentials redacted wherever they appear
 * in logged request or response headers, and patient ids in request targets pseudonymized.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const redactor = options.redactTarget ?? null;
  return pino(
    {
      level: options.level ?? process.env.WARDGATE_LOG_LEVEL ?? 'info',
      base: { service: 'wardgate' },
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'req.headers["proxy-authorization"]',
          'res.headers["set-cookie"]',
          '*.headers.authorization',
          '*.headers.cookie',
          '*.token',
          '*.id_token',
          '*.access_token',
          '*.client_secret',
          '*.code_verifier',
        ],
        censor: '[redacted]',
      },
      ...(redactor ? { formatters: { log: (object: Record<string, unknown>) => redactTargets(object, redactor) } } : {}),
    },
    options.destination,
  );
}

function redactTargets(object: Record<string, unknown>, redactor: { redactTarget(target: string): string }): Record<string, unknown> {
  let copy: Record<string, unknown> | null = null;
  for (const field of TARGET_FIELDS) {
    const value = object[field];
    if (typeof value !== 'string') continue;
    copy ??= { ...object };
    copy[field] = redactor.redactTarget(value);
  }
  return copy ?? object;
}

export type { Logger };

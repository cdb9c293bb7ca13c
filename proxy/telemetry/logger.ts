import { pino, type Logger, type DestinationStream } from 'pino';

/**
 * Creates the process logger: JSON lines, with credentials redacted wherever they appear
 * in logged request or response headers.
 */
export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
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
    },
    options.destination,
  );
}

export type { Logger };

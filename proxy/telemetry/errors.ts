/** Codes of {@link TelemetryError}. */
export type TelemetryErrorCode = 'WG_TELEMETRY_INVALID_ENV' | 'WG_TELEMETRY_INVALID_OPTION';

/**
 * Raised at start-up when an `OTEL_*` environment variable or a `telemetry.*` option is
 * unusable. `setting` names the variable or option so that the operator knows what to fix.
 */
export class TelemetryError extends Error {
  readonly code: TelemetryErrorCode;
  readonly setting: string;

  constructor(code: TelemetryErrorCode, setting: string, message: string) {
    super(message);
    this.name = 'TelemetryError';
    this.code = code;
    this.setting = setting;
  }
}

/** Throws `WG_TELEMETRY_INVALID_ENV` for the variable `name`. */
export function invalidEnv(name: string, value: string, expected: string): never {
  throw new TelemetryError('WG_TELEMETRY_INVALID_ENV', name, `Environment variable ${name} is invalid: expected ${expected}, received ${JSON.stringify(value)}.`);
}

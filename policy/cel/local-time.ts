import { PolicyError } from '../errors.ts';

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** Width of the window over which the UTC offset is cached. Time zone transitions fall on quarter hours. */
const OFFSET_WINDOW_MS = 15 * MINUTE_MS;

/** Hour of day (0-23), minute (0-59) and weekday (0 = Sunday) of an instant in the policy's time zone. */
export interface LocalTime {
  readonly hour: number;
  readonly minute: number;
  readonly weekday: number;
}

/**
 * Converts request times to local hour and weekday in one IANA time zone. The UTC offset
 * is looked up through `Intl` once per quarter hour and cached, because `Intl` formatting
 * costs microseconds and decide() runs on every request.
 */
export class LocalTimeClock {
  readonly timeZone: string;
  readonly #format: Intl.DateTimeFormat | undefined;
  #windowStart = Number.NaN;
  #offsetMs = 0;

  /** Throws `WG_POLICY_INVALID_OPTION` naming `timeZone` when the zone is unknown to this Node.js build. */
  constructor(timeZone: string) {
    let format: Intl.DateTimeFormat;
    try {
      format = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
      });
    } catch (error) {
      throw new PolicyError('WG_POLICY_INVALID_OPTION', `policy option timeZone: expected an IANA time zone name such as "UTC" or "Europe/Berlin", or a UTC offset such as "+01:00", got ${JSON.stringify(timeZone)}; fix the option`, { cause: error });
    }

    this.timeZone = format.resolvedOptions().timeZone;
    this.#format = this.timeZone === 'UTC' ? undefined : format;
  }

  /** Returns the local hour, minute and weekday of `epochMs`; throws a `RangeError` when it is not finite. */
  localTime(epochMs: number): LocalTime {
    if (!Number.isFinite(epochMs)) throw new RangeError(`request time must be a finite number of milliseconds, got ${epochMs}`);

    const local = epochMs + this.#offsetAt(epochMs);
    const days = Math.floor(local / DAY_MS);
    const sinceMidnight = local - days * DAY_MS;
    const hour = Math.floor(sinceMidnight / HOUR_MS);
    const minute = Math.floor((sinceMidnight - hour * HOUR_MS) / MINUTE_MS);
    // 1970-01-01 was a Thursday (weekday 4).
    const weekday = (((days + 4) % 7) + 7) % 7;

    return { hour, minute, weekday };
  }

  #offsetAt(epochMs: number): number {
    if (this.#format === undefined) return 0;

    const windowStart = Math.floor(epochMs / OFFSET_WINDOW_MS) * OFFSET_WINDOW_MS;
    if (windowStart !== this.#windowStart) {
      this.#offsetMs = this.#lookUpOffset(windowStart);
      this.#windowStart = windowStart;
    }

    return this.#offsetMs;
  }

  #lookUpOffset(epochMs: number): number {
    const parts: Record<string, number> = {};
    for (const part of this.#format!.formatToParts(epochMs)) {
      if (part.type !== 'literal') parts[part.type] = Number(part.value);
    }
    const asUtc = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!);

    return asUtc - Math.floor(epochMs / MINUTE_MS) * MINUTE_MS;
  }
}

/** A parsed `match.time` block: weekdays on which a window starts and the windows' minutes. */
export interface TimeWindowSpec {
  /** Weekdays (0 = Sunday) on which the windows start; all seven when `days` is left out. */
  readonly days: readonly number[];
  /** Windows as [start, end) in minutes after local midnight; `end <= start` crosses midnight into the next day. */
  readonly windows: readonly { readonly start: number; readonly end: number }[];
}

const HOURS = /^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$/;
const MINUTES_PER_DAY = 1440;

/**
 * Parses `HH:MM-HH:MM` into minutes after midnight. `24:00` is allowed as an end. Returns
 * a message saying what was expected when the text is not such a range.
 */
export function parseHours(text: string): { start: number; end: number } | string {
  const match = HOURS.exec(text);
  if (match === null) return 'hours as "HH:MM-HH:MM" in 24-hour time, such as "07:00-19:00" or "22:00-06:00"';

  const start = Number(match[1]) * 60 + Number(match[2]);
  const end = Number(match[3]) * 60 + Number(match[4]);
  if (end > MINUTES_PER_DAY) return 'an end time of at most 24:00';
  if (start === end) return 'a range whose start and end differ (use "00:00-24:00" for the whole day)';

  return { start, end };
}

/**
 * Compiles a time window to a predicate over local weekday and minute of day. A window
 * that crosses midnight belongs to the day it starts on: `days: [fri]` with
 * `22:00-06:00` matches Friday 23:00 and Saturday 05:00, but not Friday 05:00.
 */
export function compileTimeWindow(spec: TimeWindowSpec): (weekday: number, minute: number) => boolean {
  const startDays = new Uint8Array(7);
  for (const day of spec.days) startDays[day] = 1;
  const windows = spec.windows.map((window) => ({ start: window.start, end: window.end, crosses: window.end <= window.start }));

  return (weekday, minute) => {
    for (const window of windows) {
      if (!window.crosses) {
        if (startDays[weekday] === 1 && minute >= window.start && minute < window.end) return true;
        continue;
      }
      if (startDays[weekday] === 1 && minute >= window.start) return true;
      if (startDays[(weekday + 6) % 7] === 1 && minute < window.end) return true;
    }
    return false;
  };
}

/** The fields of an RFC 3339 date-time, as numbers; the zone offset without its sign. */
export interface DateTimeFields {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  readonly offsetHours: number;
  readonly offsetMinutes: number;
}

const MONTH_NAMES = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/**
 * Returns which field of a date-time is out of range (RFC 3339 section 5.7), or null. Date.parse
 * accepts day 31 in every month and hour 24 and moves such a time into the next month or day,
 * so callers check the fields first.
 */
export function dateTimeRangeProblem(fields: DateTimeFields): string | null {
  const { year, month, day, hour, minute, second, offsetHours, offsetMinutes } = fields;
  if (month < 1 || month > 12) return `month ${month} is not 01 to 12`;
  const days = daysInMonth(year, month);
  if (day < 1 || day > days) return `${MONTH_NAMES[month - 1]} ${year} has ${days} days`;
  if (hour > 23) return `hour ${hour} is not 00 to 23`;
  if (minute > 59) return `minute ${minute} is not 00 to 59`;
  // NOTE: RFC 3339 allows second 60 for a leap second; JavaScript time has no leap seconds.
  if (second > 59) return `second ${second} is not 00 to 59`;
  if (offsetHours > 23 || offsetMinutes > 59) return 'the zone offset is not -23:59 to +23:59';

  return null;
}

function daysInMonth(year: number, month: number): number {
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (month === 2) return leap ? 29 : 28;

  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * Timestamps as `Date.prototype.toISOString` writes them ("2026-12-06T03:41:07.123Z"), read
 * without `Date.parse` and without making a string: a controller reads several in each of
 * thousands of agent reports a second (schema checks, kept reports, certificate expiry), and
 * parsing plus writing back to compare cost more than the rest of a report's bookkeeping.
 */

const CANONICAL_LENGTH = 24;
const ZERO = 48;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * The milliseconds of `stamp` when `new Date(ms).toISOString()` would write exactly `stamp`
 * (a four-digit year from 0100, every field in range); NaN otherwise, including for the valid
 * ISO forms `toISOString` never writes (offsets, other precisions): callers that accept those
 * fall back to `Date.parse`.
 */
export function canonicalIsoMs(stamp: string): number {
  if (stamp.length !== CANONICAL_LENGTH) return Number.NaN;
  if (
    stamp.charCodeAt(4) !== 45 || // -
    stamp.charCodeAt(7) !== 45 ||
    stamp.charCodeAt(10) !== 84 || // T
    stamp.charCodeAt(13) !== 58 || // :
    stamp.charCodeAt(16) !== 58 ||
    stamp.charCodeAt(19) !== 46 || // .
    stamp.charCodeAt(23) !== 90 // Z
  )
    return Number.NaN;
  const year = digits(stamp, 0, 4);
  const month = digits(stamp, 5, 2);
  const day = digits(stamp, 8, 2);
  const hour = digits(stamp, 11, 2);
  const minute = digits(stamp, 14, 2);
  const second = digits(stamp, 17, 2);
  const milli = digits(stamp, 20, 3);
  // Date.UTC reads years 0–99 as 1900–1999; such stamps take the slow path.
  if (year < 100 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return Number.NaN;
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59 || milli < 0)
    return Number.NaN;
  return Date.UTC(year, month - 1, day, hour, minute, second, milli);
}

/** The decimal number in `text` at `from`, `count` digits long; -1 when one is not a digit. */
function digits(text: string, from: number, count: number): number {
  let value = 0;
  for (let i = from; i < from + count; i++) {
    const digit = text.charCodeAt(i) - ZERO;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

function daysIn(year: number, month: number): number {
  if (month !== 2) return DAYS_IN_MONTH[month - 1]!;
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return leap ? 29 : 28;
}

import { describe, expect, it } from "vitest";
import { canonicalIsoMs } from "./iso-time.js";

/** What the slow path says: the ms when toISOString writes the stamp back exactly, else NaN. */
function reference(stamp: string): number {
  const ms = Date.parse(stamp);
  return Number.isNaN(ms) || new Date(ms).toISOString() !== stamp ? Number.NaN : ms;
}

describe("canonicalIsoMs", () => {
  it("agrees with Date.parse and toISOString over a spread of instants, leap days and ends of months included", () => {
    const instants = [
      Date.UTC(2026, 11, 6, 3, 41, 7, 123),
      Date.UTC(2024, 1, 29, 23, 59, 59, 999),
      Date.UTC(2000, 1, 29),
      Date.UTC(1970, 0, 1),
      Date.UTC(9999, 11, 31, 23, 59, 59, 999),
      Date.UTC(100, 0, 1) + 0,
    ];
    for (let ms = Date.UTC(1999, 0, 1); ms < Date.UTC(2031, 0, 1); ms += 86_400_000 * 3.3 + 7_777)
      instants.push(ms);
    for (const ms of instants) {
      const stamp = new Date(ms).toISOString();
      expect(canonicalIsoMs(stamp), stamp).toBe(ms);
    }
  });

  it("refuses what toISOString would not write the same way, as the slow path does", () => {
    const refused = [
      "2026-02-29T00:00:00.000Z", // not a leap year
      "1900-02-29T00:00:00.000Z", // a century that is not one
      "2026-04-31T00:00:00.000Z",
      "2026-13-01T00:00:00.000Z",
      "2026-00-10T00:00:00.000Z",
      "2026-01-00T00:00:00.000Z",
      "2026-01-01T24:00:00.000Z",
      "2026-01-01T23:60:00.000Z",
      "2026-01-01T23:59:60.000Z",
      "2026-01-01T23:59:59.000+", // wrong zone letter
      "2026-01-01t23:59:59.000Z",
      "2026-01-01 23:59:59.000Z",
      "2026-01-01T23:59:59.00Z", // other precisions
      "2026-01-01T23:59:59.0000Z",
      "2026-01-01T23:59:59Z",
      "2026-01-01T23:59:59.000+00:00",
      "+002026-01-01T00:00:00.000Z",
      "2026-1a-01T00:00:00.000Z",
      "2026-01-01T00:0/:00.000Z",
      "0099-12-31T23:59:59.999Z", // Date.UTC's two-digit years: left to the slow path
      "",
      "not a time at all, 24 ch",
    ];
    for (const stamp of refused) expect(canonicalIsoMs(stamp), stamp).toBeNaN();
    for (const stamp of refused.filter((s) => !s.startsWith("0099")))
      expect(reference(stamp), stamp).toBeNaN();
  });

  it("agrees with the slow path on stamps with one character changed (random, seeded)", () => {
    let seed = 12345;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const alphabet = "0123456789-T:.Z+/ a";
    for (let i = 0; i < 20_000; i++) {
      const base = new Date(Date.UTC(1990, 0, 1) + Math.floor(random() * 2e12)).toISOString();
      const at = Math.floor(random() * base.length);
      const stamp = base.slice(0, at) + alphabet[Math.floor(random() * alphabet.length)] + base.slice(at + 1);
      const expected = reference(stamp);
      // Years 0–99 are left to the slow path on purpose.
      if (Number.isNaN(expected) || stamp.startsWith("00")) expect(canonicalIsoMs(stamp), stamp).toBeNaN();
      else expect(canonicalIsoMs(stamp), stamp).toBe(expected);
    }
  });
});

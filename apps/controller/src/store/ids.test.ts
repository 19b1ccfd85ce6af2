/** Ids sort by the time they were made, per prefix, whichever clock each prefix's times come from. */
import { describe, expect, it } from "vitest";
import { eventIdBound, newId } from "./ids.js";

describe("newId", () => {
  it("sorts one prefix's ids by the time given, apart from other prefixes' clocks", () => {
    const now = Date.parse("2030-01-01T00:00:00.000Z");
    // Other ids made on a machine clock 30 s ahead do not drag the event ids along.
    newId("tok", now + 30_000);
    const first = newId("evt", now);
    expect(first < eventIdBound(now + 1)).toBe(true);
    expect(first >= eventIdBound(now)).toBe(true);
    const second = newId("evt", now);
    expect(second > first).toBe(true);
  });

  it("never goes backwards within a prefix when the clock does", () => {
    const now = Date.parse("2031-01-01T00:00:00.000Z");
    const later = newId("rep", now);
    const stepped = newId("rep", now - 5000);
    expect(stepped > later).toBe(true);
  });
});

import { describe, expect, it } from "vitest";
import type { ClusterClock } from "../cluster/cluster-clock.js";
import type { WriteBehind } from "../store/write-behind.js";
import { EventBus } from "./bus.js";

const NOW = Date.parse("2026-03-01T12:00:00.000Z");
const clock: ClusterClock = { now: () => NOW, offsetMs: 0, measure: async () => {} };

function busStoring(rows: unknown[]): EventBus {
  return new EventBus({ appendEvent: (row: unknown) => rows.push(row) } as unknown as WriteBehind, clock);
}

describe("event bus", () => {
  it("stores the time an event reports in UTC with milliseconds, and its arrival when it reports none it can read", () => {
    const rows: Array<{ at: string }> = [];
    const bus = busStoring(rows);
    const reported = (at?: string) =>
      bus.emit({ vmName: "a", kind: "k", message: "m", ...(at ? { at } : {}) }).at;
    expect(reported("2026-01-01T00:00:00+05:00")).toBe("2025-12-31T19:00:00.000Z");
    expect(reported("2026-01-01t00:00:00z")).toBe("2026-01-01T00:00:00.000Z");
    expect(reported("0001-01-01T00:00:00Z")).toBe("0001-01-01T00:00:00.000Z");
    expect(reported("2016-12-31T23:59:60Z")).toBe("2026-03-01T12:00:00.000Z");
    expect(reported()).toBe("2026-03-01T12:00:00.000Z");
    expect(rows.map((row) => row.at)).toEqual([
      "2025-12-31T19:00:00.000Z",
      "2026-01-01T00:00:00.000Z",
      "0001-01-01T00:00:00.000Z",
      "2026-03-01T12:00:00.000Z",
      "2026-03-01T12:00:00.000Z",
    ]);
  });
});

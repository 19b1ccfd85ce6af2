import type { CommandMessage } from "@nbfleet/shared";
import { describe, expect, it } from "vitest";
import { expiredOnArrival } from "./command-expiry.js";

const restart = (times: { deadline?: number; ttlMs?: number }): CommandMessage => ({
  v: "1.1",
  id: "cmd_1",
  type: "command",
  name: "notebook.restart",
  params: {},
  ...times,
});

describe("a command that arrives too late", () => {
  const now = Date.parse("2026-12-06T12:00:00Z");
  const hour = 3_600_000;

  it("is judged by the time the controller gave it, not by this guest's clock", () => {
    // This guest's clock an hour ahead of the controller's: the deadline is in its past.
    expect(expiredOnArrival(restart({ deadline: now - hour + 600_000, ttlMs: 600_000 }), now)).toBe(false);
    // An hour behind: the deadline is far ahead, but the controller said no time was left.
    expect(expiredOnArrival(restart({ deadline: now + hour, ttlMs: 0 }), now)).toBe(true);
  });

  it("falls back to the deadline from a controller that sends no time left", () => {
    expect(expiredOnArrival(restart({ deadline: now - 1 }), now)).toBe(true);
    expect(expiredOnArrival(restart({ deadline: now + 1 }), now)).toBe(false);
    expect(expiredOnArrival(restart({}), now)).toBe(false);
  });
});

import { describe, expect, it } from "vitest";
import { CrashPolicy } from "./crash-policy.js";

const policy = {
  initialBackoffMs: 1000,
  maxBackoffMs: 60_000,
  stableMs: 60_000,
  maxCrashes: 5,
  crashWindowMs: 300_000,
};

describe("CrashPolicy", () => {
  it("doubles the delay from 1 s to the 60 s cap", () => {
    const crashes = new CrashPolicy({ ...policy, maxCrashes: 100, crashWindowMs: 1 });
    const delays: number[] = [];
    for (let i = 0; i < 9; i++) {
      const decision = crashes.onCrash(i * 10, i * 10 + 5);
      if (decision.action === "restart") delays.push(decision.delayMs);
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  });

  it("resets the backoff after a stable minute", () => {
    const crashes = new CrashPolicy(policy);
    crashes.onCrash(0, 1000);
    crashes.onCrash(2000, 3000);
    expect(crashes.onCrash(4000, 4000 + 60_000)).toEqual({ action: "restart", delayMs: 1000 });
  });

  it("gives up after maxCrashes inside the window", () => {
    const crashes = new CrashPolicy(policy);
    const decisions = [1, 2, 3, 4, 5].map((i) => crashes.onCrash(i * 100, i * 100 + 50));
    expect(decisions.at(-1)).toEqual({ action: "give_up", crashes: 5 });
    expect(decisions.slice(0, 4).every((d) => d.action === "restart")).toBe(true);
  });

  it("forgets crashes older than the window", () => {
    const crashes = new CrashPolicy({ ...policy, maxCrashes: 2, crashWindowMs: 1000 });
    crashes.onCrash(0, 0);
    expect(crashes.onCrash(5000, 5000).action).toBe("restart");
  });
});

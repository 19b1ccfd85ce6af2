import { describe, expect, it } from "vitest";
import { Backoff } from "./backoff.js";
import { Rotation } from "./rotation.js";

describe("Rotation", () => {
  it("moves to the next entry after every end and says when a round is over", () => {
    const rotation = new Rotation(["a", "b", "c"]);
    const seen = [rotation.current];
    const rounds: boolean[] = [];
    for (let i = 0; i < 6; i++) {
      rounds.push(rotation.moveOn());
      seen.push(rotation.current);
    }
    expect(seen).toEqual(["a", "b", "c", "a", "b", "c", "a"]);
    expect(rounds).toEqual([false, false, true, false, false, true]);
  });

  it("counts a new round from a stable connection on, wherever it stands", () => {
    const rotation = new Rotation(["a", "b"]);
    rotation.moveOn(); // a failed: b
    rotation.startRound(); // b held
    expect(rotation.moveOn()).toBe(false); // b dropped: a, one step at the same ceiling
    expect(rotation.current).toBe("a");
    expect(rotation.moveOn()).toBe(true);
  });

  it("with one entry every end is a round: the backoff grows per attempt as before", () => {
    const rotation = new Rotation(["only"]);
    expect([rotation.moveOn(), rotation.moveOn()]).toEqual([true, true]);
    expect(() => new Rotation([])).toThrow(/at least one/);
  });

  it("with the backoff: each try of a round waits one step under the same ceiling", () => {
    const rotation = new Rotation(["a", "b"]);
    const backoff = new Backoff({ initialMs: 100, maxMs: 10_000 }, () => 1);
    const delays = Array.from({ length: 6 }, () => (rotation.moveOn() ? backoff.next() : backoff.draw()));
    expect(delays).toEqual([100, 100, 200, 200, 400, 400]);
  });
});

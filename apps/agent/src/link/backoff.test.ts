import { describe, expect, it } from "vitest";
import { Backoff } from "./backoff.js";

describe("Backoff", () => {
  it("draws each delay under a ceiling that doubles from initialMs up to maxMs (full jitter)", () => {
    const ceilings: number[] = [];
    const backoff = new Backoff({ initialMs: 100, maxMs: 10_000 }, () => 1);
    for (let i = 0; i < 9; i++) ceilings.push(backoff.next());
    expect(ceilings).toEqual([100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
    const low = new Backoff({ initialMs: 100, maxMs: 10_000 }, () => 0);
    expect([low.next(), low.next(), low.next()]).toEqual([0, 0, 0]);
    const half = new Backoff({ initialMs: 100, maxMs: 10_000 }, () => 0.5);
    expect([half.next(), half.next(), half.next()]).toEqual([50, 100, 200]);
  });

  it("grows past maxMs up to a given cap, and starts over after reset", () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000 }, () => 1);
    for (let i = 0; i < 6; i++) backoff.next(60_000);
    expect(backoff.next(60_000)).toBe(6400);
    expect(backoff.next()).toBe(1000);
    backoff.reset();
    expect(backoff.next()).toBe(100);
  });

  it("waits between half and all of the cap when asked to go slow", () => {
    expect(new Backoff({ initialMs: 100, maxMs: 1000 }, () => 0).slow(60_000)).toBe(30_000);
    expect(new Backoff({ initialMs: 100, maxMs: 1000 }, () => 1).slow(60_000)).toBe(60_000);
  });

  it("never overflows after very many attempts", () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 10_000 }, () => 1);
    for (let i = 0; i < 2000; i++) backoff.next();
    expect(backoff.next()).toBe(10_000);
  });
});

import type { AgentState } from "@nbfleet/shared";
import { simState } from "@nbfleet/testkit/sim-agent";
import { describe, expect, it } from "vitest";
import { KeptHealth, renewed, sameDetails, sameJson } from "./details.js";

const base = (over: Partial<Parameters<typeof simState>[0]> = {}): AgentState =>
  simState({
    state: "running",
    pid: 4242,
    port: 8888,
    restarts: 1,
    startedAt: "2026-11-27T10:00:00.000Z",
    now: new Date("2026-11-27T10:00:05.000Z"),
    ...over,
  });

describe("sameDetails", () => {
  it("ignores what every report renews: observedAt, checkedAt and check data", () => {
    const first = base();
    const later = base({ now: new Date("2026-11-27T10:05:00.000Z") });
    later.health.checks[3]!.data = { daysLeft: 363, fingerprintSha256: "AA:BB" };
    expect(later.health.observedAt).not.toBe(first.health.observedAt);
    expect(sameDetails(first.notebook, first.health, later)).toBe(true);
  });

  it("sees a new pid, a restart, a check's status or message, and the overall status", () => {
    const first = base();
    expect(sameDetails(first.notebook, first.health, base({ pid: 4243 }))).toBe(false);
    expect(sameDetails(first.notebook, first.health, base({ restarts: 2 }))).toBe(false);
    const message = base();
    message.health.checks[1]!.message = "/api answers 7.0.0";
    expect(sameDetails(first.notebook, first.health, message)).toBe(false);
    const stopped = base({ state: "stopped", pid: null, startedAt: null });
    expect(sameDetails(first.notebook, first.health, stopped)).toBe(false);
    const nested = base();
    nested.notebook.certificate!.subjectAltNames = ["DNS:localhost"];
    expect(sameDetails(first.notebook, first.health, nested)).toBe(false);
  });

  it("has nothing to compare with before the first report", () => {
    expect(sameDetails(null, null, base())).toBe(false);
  });
});

describe("sameJson", () => {
  it("compares JSON values structurally", () => {
    expect(sameJson({ a: [1, { b: null }] }, { a: [1, { b: null }] })).toBe(true);
    expect(sameJson({ a: 1 }, { a: 1, b: undefined })).toBe(false);
    expect(sameJson({ a: 1, b: 2 }, { a: 1 })).toBe(false);
    expect(sameJson([1, 2], { 0: 1, 1: 2 })).toBe(false);
    expect(sameJson([1, 2], [1, 2, 3])).toBe(false);
    expect(sameJson(null, {})).toBe(false);
    expect(sameJson("1", 1)).toBe(false);
  });
});

describe("renewed", () => {
  it("keeps the session's own objects for what a new report repeats, and equals the new report", () => {
    const kept = base();
    const next = base({ now: new Date("2026-11-27T10:05:00.000Z") });
    next.health.checks[3]!.data = { daysLeft: 363, fingerprintSha256: "AA:BB" };
    const { notebook, health } = kept;
    const [firstCheck] = health.checks;
    const tlsData = health.checks[3]!.data;
    const expected = structuredClone(next);

    expect(renewed(notebook, next.notebook)).toBe(notebook);
    expect(notebook).toEqual(expected.notebook);
    expect(renewed(health, next.health)).toBe(health);
    expect(health.checks[0]).toBe(firstCheck);
    expect(health).toEqual(expected.health);
    // Changed leaves are written into the kept objects.
    expect(health.checks[3]!.data).toBe(tlsData);
    expect(health.checks[3]!.data).toEqual({ daysLeft: 363, fingerprintSha256: "AA:BB" });
  });

  it("takes the new value where a key, a length or a type differs, and starts from nothing", () => {
    const kept = base();
    const next = base({ pid: 5000 });
    next.health.checks.pop();
    (next.notebook as Record<string, unknown>).extra = { a: 1 };
    const notebook = renewed(kept.notebook, next.notebook);
    expect(notebook).toBe(next.notebook);
    expect(renewed(kept.health, next.health).checks).toBe(next.health.checks);
    expect(renewed(null, next.notebook)).toBe(next.notebook);
    expect(renewed<unknown>({ a: [1, 2] }, { a: "x" })).toEqual({ a: "x" });
    expect(renewed<unknown>({ a: { b: 1 } }, { a: null })).toEqual({ a: null });
  });

  it("never assigns __proto__ from a report", () => {
    const kept = JSON.parse('{"a":{"__proto__":{"polluted":1}}}');
    const next = JSON.parse('{"a":{"__proto__":{"polluted":2}}}');
    const result = renewed<{ a: Record<string, unknown> }>(kept, next);
    expect(result.a).toBe(next.a);
    expect(Object.getPrototypeOf(kept.a)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe("KeptHealth", () => {
  const at = (iso: string) => base({ now: new Date(iso) }).health;

  it("shares one copy among readers until the next report", () => {
    const kept = new KeptHealth();
    expect(kept.shared).toBeNull();
    kept.keep(at("2026-11-27T10:00:05.000Z"));
    const first = kept.shared;
    expect(first).toEqual(kept.report);
    expect(kept.shared).toBe(first);
    const later = at("2026-11-27T10:00:20.250Z");
    const sent = structuredClone(later);
    kept.keep(later);
    expect(kept.shared).not.toBe(first);
    expect(kept.shared).toEqual(sent);
    expect(first!.observedAt).toBe("2026-11-27T10:00:05.000Z");
  });

  it("serves the latest report, timestamps included, without writing them into the kept tree", () => {
    const kept = new KeptHealth();
    expect(kept.report).toBeNull();
    const first = at("2026-11-27T10:00:05.000Z");
    kept.keep(first);
    const later = at("2026-11-27T10:05:00.123Z");
    later.checks[1]!.message = "/api answers 7.0.0";
    const sent = structuredClone(later);
    kept.keep(later);
    expect(kept.report).toEqual(sent);
    // The reader's copy is its own; the report handed in is left as it came.
    expect(kept.report).not.toBe(kept.report);
    expect(later).toEqual(sent);
    // The tree is the first one, renewed: a changed message written in, the times left.
    expect(kept.details).toBe(first);
    expect(first.checks[1]!.message).toBe("/api answers 7.0.0");
    expect(first.observedAt).toBe("2026-11-27T10:00:05.000Z");
    expect(first.checks.map((check) => check.checkedAt)).not.toContain("2026-11-27T10:05:00.123Z");
  });

  it("keeps a timestamp written otherwise than toISOString exactly as written", () => {
    const kept = new KeptHealth();
    kept.keep(at("2026-11-27T10:00:05.000Z"));
    const later = at("2026-11-27T10:05:00.000Z");
    later.observedAt = "2026-11-27T11:05:00+01:00";
    later.checks[0]!.checkedAt = "2026-11-27T10:05:00Z";
    const sent = structuredClone(later);
    kept.keep(later);
    expect(kept.report).toEqual(sent);
  });

  it("follows a report with more or fewer checks", () => {
    const kept = new KeptHealth();
    kept.keep(at("2026-11-27T10:00:05.000Z"));
    const fewer = at("2026-11-27T10:05:00.000Z");
    fewer.checks.pop();
    kept.keep(structuredClone(fewer));
    expect(kept.report).toEqual(fewer);
    const again = at("2026-11-27T10:06:00.000Z");
    kept.keep(structuredClone(again));
    expect(kept.report).toEqual(again);
  });
});

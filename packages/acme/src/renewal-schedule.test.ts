import { describe, expect, it } from "vitest";
import { RENEW_BEFORE_MS, renewalDueAt, retryAt } from "./renewal-schedule.js";

const DAY = 86_400_000;
const now = new Date("2026-12-04T12:00:00Z");

function issued(hostname: string, notBefore: Date, lifetimeMs: number) {
  return {
    notBefore: notBefore.toISOString(),
    notAfter: new Date(notBefore.getTime() + lifetimeMs).toISOString(),
    subjectAltNames: [`DNS:${hostname}`],
    selfSigned: false,
  };
}

describe("renewalDueAt", () => {
  it("asks at once when nothing ACME-issued for this name is served", () => {
    expect(renewalDueAt(null, "nb.example.com", now)).toEqual(now);
    const selfSigned = { ...issued("nb.example.com", now, 90 * DAY), selfSigned: true };
    expect(renewalDueAt(selfSigned, "nb.example.com", now)).toEqual(now);
    expect(renewalDueAt(issued("old.example.com", now, 90 * DAY), "nb.example.com", now)).toEqual(now);
  });

  it("a 90-day certificate renews between 40 and 30 days before it expires, each machine at its own moment", () => {
    const fleet = Array.from({ length: 200 }, (_, i) => `nb${i}.westeurope.cloudapp.azure.com`);
    const daysBefore = fleet.map((name) => {
      const cert = issued(name, now, 90 * DAY);
      return (Date.parse(cert.notAfter) - renewalDueAt(cert, name, now).getTime()) / DAY;
    });
    for (const days of daysBefore) {
      expect(days).toBeLessThanOrEqual(40);
      expect(days).toBeGreaterThanOrEqual(30);
    }
    // Spread over the whole ten days, not bunched: every day of it gets some machines.
    const perDay = new Set(daysBefore.map((days) => Math.floor(days)));
    expect(perDay.size).toBeGreaterThanOrEqual(10);
  });

  it("keeps a machine's moment across restarts (the same inputs give the same time)", () => {
    const cert = issued("nb1.example.com", now, 90 * DAY);
    expect(renewalDueAt(cert, "nb1.example.com", now)).toEqual(renewalDueAt(cert, "NB1.example.com", now));
  });

  it("a short-lived certificate renews with at least a third of its life left", () => {
    const cert = issued("nb.acme.test", now, 120_000);
    const due = renewalDueAt(cert, "nb.acme.test", now).getTime();
    expect(due).toBeLessThanOrEqual(now.getTime() + 80_000);
    expect(due).toBeGreaterThan(now.getTime() + 80_000 - 40_000 / 3 - 1);
    expect(RENEW_BEFORE_MS).toBe(30 * DAY);
  });

  it("is never in the past", () => {
    const cert = issued("nb.example.com", new Date(now.getTime() - 89 * DAY), 90 * DAY);
    expect(renewalDueAt(cert, "nb.example.com", now)).toEqual(now);
  });
});

describe("retryAt", () => {
  it("backs off exponentially with equal jitter, capped at 6 h", () => {
    const delay = (failures: number, r: number) =>
      retryAt({ failures, now, random: () => r }).getTime() - now.getTime();
    expect(delay(1, 0)).toBe(30_000);
    expect(delay(1, 0.999)).toBeLessThan(60_000);
    expect(delay(2, 0)).toBe(60_000);
    expect(delay(5, 0)).toBe(8 * 60_000);
    expect(delay(40, 0.999)).toBeLessThanOrEqual(6 * 3_600_000);
    expect(delay(40, 0)).toBe(3 * 3_600_000);
  });

  it("never comes before the server's Retry-After", () => {
    const later = new Date(now.getTime() + 2 * 3_600_000).toISOString();
    expect(retryAt({ failures: 1, retryAt: later, now, random: () => 0.5 }).toISOString()).toBe(later);
  });

  it("keeps retrying every minute at most once the served certificate has expired (not back to 6 h)", () => {
    const notAfter = new Date(now.getTime() - 5_000).toISOString();
    const at = retryAt({ failures: 20, notAfter, now, random: () => 0.999 });
    expect(at.getTime() - now.getTime()).toBeLessThanOrEqual(60_000);
    expect(at.getTime() - now.getTime()).toBeGreaterThanOrEqual(30_000);
    const limited = new Date(now.getTime() + 3_600_000).toISOString();
    expect(retryAt({ failures: 20, notAfter, retryAt: limited, now }).toISOString()).toBe(limited);
  });

  it("retries more often as the served certificate nears its end", () => {
    const notAfter = new Date(now.getTime() + 60_000).toISOString();
    const at = retryAt({ failures: 20, notAfter, now, random: () => 0.999 });
    expect(at.getTime() - now.getTime()).toBeLessThanOrEqual(15_000);
    expect(at.getTime() - now.getTime()).toBeGreaterThanOrEqual(1000 / 2);
  });
});

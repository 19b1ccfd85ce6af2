import type { CertificateInfo, VmView } from "@nbfleet/shared";
import { describe, expect, it } from "vitest";
import { certificateCell, certificateDaysLeft, certificateFromResult } from "./certificate-view.js";

const NOW = Date.parse("2026-12-04T12:00:00.000Z");
const DAY_MS = 86_400_000;
const at = (ms: number) => new Date(ms).toISOString();
const cert = (over: Partial<CertificateInfo>): CertificateInfo => ({
  fingerprintSha256: "AA",
  notBefore: at(NOW - DAY_MS),
  notAfter: at(NOW + 30 * DAY_MS),
  subjectAltNames: [],
  selfSigned: true,
  ...over,
});
const withCert = (c: CertificateInfo | null) => ({ notebook: { certificate: c } }) as unknown as VmView;

describe("the CERT column", () => {
  it("counts whole days as the agent does when the agent sends none, and prefers the agent's figure", () => {
    expect(certificateDaysLeft(cert({ notAfter: at(NOW + 2 * DAY_MS - 1) }), NOW)).toBe(1);
    expect(certificateDaysLeft(cert({ notAfter: at(NOW + 2 * DAY_MS) }), NOW)).toBe(2);
    expect(certificateDaysLeft(cert({ notAfter: at(NOW - 1) }), NOW)).toBe(-1);
    expect(certificateDaysLeft(cert({ notAfter: at(NOW + 2 * DAY_MS), daysLeft: 7 }), NOW)).toBe(7);
  });

  it("names the issuer's kind, and what an older agent's certificate must be", () => {
    expect(certificateCell(withCert(null), NOW)).toBe("-");
    expect(certificateCell(withCert(cert({ notAfter: at(NOW + DAY_MS / 2) })), NOW)).toBe("self 0d");
    expect(certificateCell(withCert(cert({ selfSigned: false })), NOW)).toBe("provided 30d");
    expect(certificateCell(withCert(cert({ issuer: { kind: "acme", name: "x" }, daysLeft: -1 })), NOW)).toBe(
      "acme expired",
    );
    expect(certificateCell(withCert(cert({ notBefore: at(NOW + 60_000) })), NOW)).toBe("self not yet valid");
  });

  it("reads a served certificate only from a result that carries one", () => {
    const served = cert({});
    expect(certificateFromResult({ notebook: { certificate: served } })).toBe(served);
    for (const junk of [null, {}, "text", { notebook: null }, { notebook: { certificate: { notAfter: 5 } } }])
      expect(certificateFromResult(junk)).toBeNull();
  });
});

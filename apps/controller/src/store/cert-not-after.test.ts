import { describe, expect, it } from "vitest";
import { certificateNotAfter } from "./cert-not-after.js";

describe("certificateNotAfter", () => {
  it("keeps the reported notAfter as UTC ISO with milliseconds, whatever offset it came in", () => {
    const at = (notAfter: unknown) => certificateNotAfter({ certificate: { notAfter } });
    expect(at("2027-03-01T12:00:00.000Z")).toBe("2027-03-01T12:00:00.000Z");
    expect(at("2027-03-01T12:00:00Z")).toBe("2027-03-01T12:00:00.000Z");
    expect(at("2027-03-01T23:30:00-05:00")).toBe("2027-03-02T04:30:00.000Z");
  });

  it("gives null for no certificate or anything that is not a date", () => {
    for (const notebook of [
      null,
      undefined,
      "text",
      42,
      {},
      { certificate: null },
      { certificate: "AA:BB" },
      { certificate: {} },
      { certificate: { notAfter: 1_800_000_000_000 } },
      { certificate: { notAfter: "soon" } },
      { certificate: { notAfter: "" } },
    ])
      expect(certificateNotAfter(notebook), JSON.stringify(notebook)).toBeNull();
  });

  it("clamps years past 9999 or before 0, which would sort wrongly as text", () => {
    const at = (notAfter: string) => certificateNotAfter({ certificate: { notAfter } });
    expect(at("+275760-09-13T00:00:00.000Z")).toBe("9999-12-31T23:59:59.999Z");
    expect(at("+010000-01-01T00:00:00.000Z")).toBe("9999-12-31T23:59:59.999Z");
    expect(at("-000001-01-01T00:00:00.000Z")).toBe("0000-01-01T00:00:00.000Z");
    expect(at("9999-12-31T23:59:59.999Z")! > at("2027-01-01T00:00:00Z")!).toBe(true);
  });
});

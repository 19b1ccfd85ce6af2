import { operatorPair } from "@nbfleet/testkit/test-ca";
import { describe, expect, it } from "vitest";
import { AgentError } from "../errors.js";
import { generateSelfSigned } from "./generate.js";
import { checkPair, inspectCertificate } from "./inspect.js";

const DAY_MS = 24 * 60 * 60 * 1000;

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof AgentError ? error.code : "not an AgentError";
  }
  return undefined;
}

describe("inspectCertificate", () => {
  it("reports validity, days left and who signed it", async () => {
    const now = new Date("2031-03-01T00:00:00.000Z");
    const { certPem } = await generateSelfSigned({ hostnames: ["a.example"], days: 90, now });
    const info = inspectCertificate(certPem, new Date(now.getTime() + 10 * DAY_MS));
    expect(info).toMatchObject({
      notBefore: "2031-02-28T23:55:00.000Z",
      notAfter: "2031-05-30T00:00:00.000Z",
      selfSigned: true,
      managed: true,
      daysLeft: 80,
    });
    expect(info.subjectAltNames).toContain("DNS:a.example");

    const operator = await operatorPair({ notBefore: now, days: 30 });
    expect(inspectCertificate(operator.certPem, now)).toMatchObject({
      selfSigned: false,
      managed: false,
      daysLeft: 30,
    });
    const foreign = await operatorPair({ notBefore: now, days: 30, selfSigned: true });
    expect(inspectCertificate(foreign.certPem, now)).toMatchObject({ selfSigned: true, managed: false });
  });

  it("refuses text that is not a certificate", () => {
    expect(() => inspectCertificate("hello", new Date(), "/x/cert.pem")).toThrow(
      /\/x\/cert.pem is not a PEM certificate/,
    );
    expect(
      codeOf(() => inspectCertificate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")),
    ).toBe("NBF_CERT_INVALID");
  });
});

describe("checkPair", () => {
  const labels = { cert: "/p/cert.pem", key: "/p/key.pem" };

  it("accepts a matching, current pair", async () => {
    const { certPem, keyPem } = await generateSelfSigned();
    expect(checkPair(certPem, keyPem, new Date(), labels).selfSigned).toBe(true);
  });

  it("catches a key from another pair", async () => {
    const a = await generateSelfSigned();
    const b = await generateSelfSigned();
    expect(codeOf(() => checkPair(a.certPem, b.keyPem, new Date(), labels))).toBe("NBF_CERT_INVALID");
    expect(() => checkPair(a.certPem, b.keyPem, new Date(), labels)).toThrow(
      /\/p\/key.pem does not belong to \/p\/cert.pem/,
    );
  });

  it("catches an expired certificate and one not valid yet", async () => {
    const past = new Date(Date.now() - 10 * DAY_MS);
    const expired = await generateSelfSigned({ now: past, days: 1 });
    expect(codeOf(() => checkPair(expired.certPem, expired.keyPem, new Date(), labels))).toBe(
      "NBF_CERT_INVALID",
    );
    expect(() => checkPair(expired.certPem, expired.keyPem, new Date(), labels)).toThrow(
      /\/p\/cert.pem expired on /,
    );

    const future = await generateSelfSigned({ now: new Date(Date.now() + 10 * DAY_MS) });
    expect(() => checkPair(future.certPem, future.keyPem, new Date(), labels)).toThrow(/is not valid before/);
  });

  it("names the file that cannot be parsed", async () => {
    const { certPem } = await generateSelfSigned();
    expect(() => checkPair(certPem, "garbage", new Date(), labels)).toThrow(/\/p\/key.pem cannot be parsed/);
    expect(() => checkPair("garbage", "garbage", new Date(), labels)).toThrow(/\/p\/cert.pem is not a PEM/);
  });
});

import { operatorPair } from "@nbfleet/testkit/test-ca";
import { describe, expect, it } from "vitest";
import { checkIssuedChain } from "./check-chain.js";
import { AcmeError } from "./error.js";

const DAY_MS = 86_400_000;
const now = () => new Date(Date.now() - DAY_MS);

function refusal(run: () => unknown): AcmeError {
  try {
    run();
  } catch (error) {
    return error as AcmeError;
  }
  throw new Error("the chain was accepted");
}

describe("checkIssuedChain", () => {
  it("accepts a chain for its key and name, valid now, and names its SANs", async () => {
    const pair = await operatorPair({ notBefore: now(), days: 10 });
    const checked = checkIssuedChain(pair.certPem, pair.keyPem, "Notebooks.Example.com");
    expect(checked.subjectAltNames).toEqual(["DNS:notebooks.example.com"]);
  });

  it("refuses another name, another key, an expired chain and garbage, each as NBF_ACME_FAILED", async () => {
    const pair = await operatorPair({ notBefore: now(), days: 10 });
    const other = await operatorPair({ notBefore: now(), days: 10 });

    const name = refusal(() => checkIssuedChain(pair.certPem, pair.keyPem, "nb.example.org"));
    expect(name).toBeInstanceOf(AcmeError);
    expect(name.code).toBe("NBF_ACME_FAILED");
    expect(name.message).toBe(
      "the ACME server issued a certificate for DNS:notebooks.example.com, not nb.example.org; the current certificate was kept",
    );

    const key = refusal(() => checkIssuedChain(pair.certPem, other.keyPem, "notebooks.example.com"));
    expect(key.message).toMatch(/checking the issued chain failed: the key made for it does not belong/);

    const expired = await operatorPair({ notBefore: new Date(Date.now() - 10 * DAY_MS), days: 2 });
    expect(
      refusal(() => checkIssuedChain(expired.certPem, expired.keyPem, "notebooks.example.com")).message,
    ).toMatch(/the issued chain expired on /);
    expect(refusal(() => checkIssuedChain("not a chain", pair.keyPem, "x.test")).message).toMatch(
      /the issued chain is not a PEM certificate/,
    );
  });
});

describe("temporaryCertificate", () => {
  it("is a self-signed pair for the name that the issued-chain check would accept, marked temporary", async () => {
    const { temporaryCertificate, TEMPORARY_ORGANIZATION } = await import("./temporary-certificate.js");
    const { X509Certificate } = await import("node:crypto");
    const pair = await temporaryCertificate("ctl.example.com", 7);
    const cert = new X509Certificate(pair.certPem);
    expect(cert.subject).toContain(`O=${TEMPORARY_ORGANIZATION}`);
    expect(cert.issuer).toBe(cert.subject);
    expect(checkIssuedChain(pair.certPem, pair.keyPem, "ctl.example.com").subjectAltNames).toEqual([
      "DNS:ctl.example.com",
    ]);
    expect(Date.parse(cert.validTo) - Date.now()).toBeGreaterThan(6.9 * DAY_MS);
  });
});

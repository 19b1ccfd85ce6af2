import { webcrypto } from "node:crypto";
import { makeTestCa } from "@nbfleet/testkit/test-ca";
import { describe, expect, it } from "vitest";
import { checkChain, splitChain } from "./chain.js";
import { generateSelfSigned } from "./generate.js";
import { x509 } from "./x509-library.js";

const DAY_MS = 86_400_000;

describe("checkChain", () => {
  it("accepts a leaf followed by the CA that signed it, and a lone self-signed certificate", async () => {
    const ca = await makeTestCa("Chain Test CA");
    const leaf = await ca.issueServer();
    const chain = splitChain(`${leaf.certPem}${ca.caPem}\n`);
    expect(chain).toHaveLength(2);
    expect(checkChain(chain)).toEqual({ valid: true, problem: null });
    expect(checkChain(splitChain((await generateSelfSigned()).certPem))).toEqual({
      valid: true,
      problem: null,
    });
  });

  it("names the link whose next certificate is not its issuer", async () => {
    const ca = await makeTestCa("Chain Test CA");
    const other = await makeTestCa("Some Other CA");
    const leaf = await ca.issueServer();
    const verdict = checkChain(splitChain(`${leaf.certPem}${other.caPem}`));
    expect(verdict.valid).toBe(false);
    expect(verdict.problem).toBe(
      "the certificate (CN=localhost) names CN=Chain Test CA as its issuer, not chain certificate 2 (CN=Some Other CA)",
    );
  });

  it("refuses a CA of the same name whose key did not sign the certificate", async () => {
    const ca = await makeTestCa("Same Name CA");
    const impostor = await makeTestCa("Same Name CA");
    const leaf = await ca.issueServer();
    const verdict = checkChain(splitChain(`${leaf.certPem}${impostor.caPem}`));
    expect(verdict.valid).toBe(false);
    expect(verdict.problem).toMatch(
      /^the certificate \(CN=localhost\) (is not signed by|names CN=Same Name CA as its issuer, not) chain certificate 2 \(CN=Same Name CA\)$/,
    );
  });

  it("says which certificate is out of its validity", async () => {
    const ca = await makeTestCa("Chain Test CA");
    const leaf = await ca.issueServer();
    const chain = splitChain(`${leaf.certPem}${ca.caPem}`);
    const later = new Date(Date.now() + 40 * DAY_MS);
    expect(checkChain(chain, later).problem).toMatch(/^the certificate \(CN=localhost\) expired on 20\d\d-/);
    const earlier = new Date(Date.now() - 3 * DAY_MS);
    expect(checkChain(chain, earlier).problem).toMatch(
      /^the certificate \(CN=localhost\) is not valid before /,
    );

    // An intermediate that runs out before its leaf: the leaf alone would look fine.
    const [intermediate, shortLeaf] = await issuedBy({ caDays: 5, caStartDaysAgo: 10, leafDays: 90 });
    const verdict = checkChain(splitChain(`${shortLeaf}${intermediate}`));
    expect(verdict.problem).toMatch(/^chain certificate 2 \(CN=Short Intermediate\) expired on /);
  });

  it("finds no certificate in text without one", () => {
    expect(checkChain(splitChain("nothing here"))).toEqual({
      valid: false,
      problem: "the chain holds no certificate",
    });
  });
});

/** A CA's certificate and a leaf it signed, with the validities asked for (PEM). */
async function issuedBy(o: { caDays: number; caStartDaysAgo: number; leafDays: number }): Promise<
  [string, string]
> {
  const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = () =>
    webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"]) as Promise<webcrypto.CryptoKeyPair>;
  const [caKeys, leafKeys] = [await keys(), await keys()];
  const caStart = new Date(Date.now() - o.caStartDaysAgo * DAY_MS);
  const ca = await x509.X509CertificateGenerator.create({
    serialNumber: "01",
    subject: "CN=Short Intermediate",
    issuer: "CN=Short Intermediate",
    notBefore: caStart,
    notAfter: new Date(caStart.getTime() + o.caDays * DAY_MS),
    signingAlgorithm: algorithm,
    publicKey: caKeys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  });
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: "02",
    subject: "CN=nb.example.org",
    issuer: ca.subject,
    notBefore: new Date(Date.now() - DAY_MS),
    notAfter: new Date(Date.now() + o.leafDays * DAY_MS),
    signingAlgorithm: algorithm,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
  });
  return [`${ca.toString("pem")}\n`, `${leaf.toString("pem")}\n`];
}

/**
 * For TLS tests: a private CA and a server certificate it issued for the loopback names, the
 * way an operator would run a controller behind their own CA.
 */
import { createPrivateKey, randomBytes, webcrypto } from "node:crypto";
import type { CertificatePair } from "@nbfleet/agent";
import { x509 } from "@nbfleet/agent";

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const DAY_MS = 86_400_000;

export interface TestCa {
  caPem: string;
  /** A server certificate for localhost, 127.0.0.1 and ::1, signed by this CA. */
  issueServer(): Promise<CertificatePair>;
}

async function keyPair() {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
}

async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return createPrivateKey({ key: der, format: "der", type: "pkcs8" })
    .export({ format: "pem", type: "pkcs8" })
    .toString();
}

export async function makeTestCa(name = "nbfleet test CA"): Promise<TestCa> {
  const caKeys = await keyPair();
  const notBefore = new Date(Date.now() - DAY_MS);
  const notAfter = new Date(Date.now() + 30 * DAY_MS);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString("hex").replace(/^./, "1"),
    name: `CN=${name}`,
    notBefore,
    notAfter,
    signingAlgorithm: ALGORITHM,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return {
    caPem: ca.toString("pem"),
    async issueServer() {
      const keys = await keyPair();
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: randomBytes(8).toString("hex").replace(/^./, "1"),
        subject: "CN=localhost",
        issuer: ca.subject,
        notBefore,
        notAfter,
        signingAlgorithm: ALGORITHM,
        publicKey: keys.publicKey,
        signingKey: caKeys.privateKey,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
          new x509.SubjectAlternativeNameExtension([
            { type: "dns", value: "localhost" },
            { type: "ip", value: "127.0.0.1" },
            { type: "ip", value: "::1" },
          ]),
          await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
        ],
      });
      return { certPem: `${cert.toString("pem")}\n`, keyPem: await keyPem(keys.privateKey) };
    },
  };
}

/**
 * For tests only: certificates as an operator would bring them, issued by a CA of their own
 * (not self-signed) or self-signed by some other tool.
 */
import { createPrivateKey, webcrypto } from "node:crypto";
import type { CertificatePair } from "./generate.js";
import { x509 } from "./x509-library.js";

const DAY_MS = 24 * 60 * 60 * 1000;
const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

async function keyPair() {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
}

async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return createPrivateKey({ key: der, format: "der", type: "pkcs8" })
    .export({ format: "pem", type: "pkcs8" })
    .toString();
}

export async function operatorPair(options: {
  notBefore: Date;
  days: number;
  selfSigned?: boolean;
}): Promise<CertificatePair> {
  const leafKeys = await keyPair();
  const common = {
    notBefore: options.notBefore,
    notAfter: new Date(options.notBefore.getTime() + options.days * DAY_MS),
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.SubjectAlternativeNameExtension([{ type: "dns", value: "notebooks.example.com" }]),
    ],
  };
  if (options.selfSigned) {
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      ...common,
      name: "CN=notebooks.example.com",
      keys: leafKeys,
    });
    return { certPem: cert.toString("pem"), keyPem: await keyPem(leafKeys.privateKey) };
  }
  const caKeys = await keyPair();
  const cert = await x509.X509CertificateGenerator.create({
    ...common,
    subject: "CN=notebooks.example.com",
    issuer: "CN=Example Operator CA",
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
  });
  return { certPem: cert.toString("pem"), keyPem: await keyPem(leafKeys.privateKey) };
}

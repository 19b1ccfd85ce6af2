/**
 * A self-signed certificate for a name, served only until the CA's chain arrives (a server that
 * must listen before it can answer a TLS-ALPN-01 challenge on its own port). ECDSA P-256,
 * serverAuth, the name as its only SAN, and O=nbfleet temporary so it is told apart from an
 * issued one.
 */
import "reflect-metadata";

import { randomBytes, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

export const TEMPORARY_ORGANIZATION = "nbfleet temporary";
const BACKDATE_MS = 5 * 60 * 1000;

export async function temporaryCertificate(
  hostname: string,
  days = 7,
  now = new Date(),
): Promise<{ certPem: string; keyPem: string }> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    // Positive: the top bit cleared.
    serialNumber:
      (randomBytes(16)[0]! & 0x7f).toString(16).padStart(2, "0") + randomBytes(15).toString("hex"),
    name: [{ CN: [hostname.slice(0, 64)] }, { O: [TEMPORARY_ORGANIZATION] }],
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + days * 86_400_000),
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension([{ type: "dns", value: hostname }]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").replace(/.{64}/g, "$&\n").replace(/\n?$/, "\n")}-----END PRIVATE KEY-----\n`;
  return { certPem: cert.toString("pem"), keyPem };
}

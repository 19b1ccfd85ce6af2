/**
 * Self-signed server certificates: ECDSA P-256 signed with SHA-256, basicConstraints CA:FALSE,
 * keyUsage digitalSignature, extendedKeyUsage serverAuth, the given DNS names and addresses as
 * SANs, a subject key identifier. The agent's default notebook certificate and the controller's
 * stand-in while its first ACME chain is on the way are both made here; the key pair is created
 * here too, so a private key never travels.
 */
import { createPrivateKey, randomBytes, webcrypto } from "node:crypto";

export interface SelfSignedRequest {
  commonName: string;
  /** O=…: tells whose certificate it is (the agent's own, a temporary one). */
  organization: string;
  dnsNames: string[];
  ips?: string[];
  notBefore: Date;
  notAfter: Date;
}

export interface CertificatePair {
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
}

export async function selfSignedPair(request: SelfSignedRequest): Promise<CertificatePair> {
  const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  // Loaded on first use: the library is large and only certificate making needs it.
  const { x509 } = await import("./x509-library.js");
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [request.commonName] }, { O: [request.organization] }],
    notBefore: request.notBefore,
    notAfter: request.notAfter,
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension([
        ...request.dnsNames.map((value) => ({ type: "dns" as const, value })),
        ...(request.ips ?? []).map((value) => ({ type: "ip" as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" })
    .export({ format: "pem", type: "pkcs8" })
    .toString();
  return { certPem: `${cert.toString("pem")}\n`, keyPem };
}

/** 128 random bits, first bit clear so the DER integer stays positive (RFC 5280 4.1.2.2). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString("hex");
}

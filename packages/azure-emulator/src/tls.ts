/**
 * The emulator's TLS: a CA made on first start and a server certificate it signs for
 * localhost, 127.0.0.1 and ::1. The Azure SDK refuses bearer tokens over plain http, so the
 * emulator must speak HTTPS; clients trust `ca.pem` (SDK `tlsOptions.ca` or
 * NODE_EXTRA_CA_CERTS). Kept in `<dataDir>/tls/` and reused while it is valid.
 */
import "reflect-metadata";

import { X509Certificate, createPrivateKey, randomBytes, webcrypto } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const DAY_MS = 86_400_000;
const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

export interface EmulatorTls {
  caFile: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

export async function ensureEmulatorTls(dataDir: string, now = new Date()): Promise<EmulatorTls> {
  const dir = path.join(dataDir, "tls");
  const files = {
    ca: path.join(dir, "ca.pem"),
    cert: path.join(dir, "server.pem"),
    key: path.join(dir, "server-key.pem"),
  };
  const existing = await Promise.all(
    [files.ca, files.cert, files.key].map((f) => readFile(f, "utf8").catch(() => null)),
  );
  const [caPem, certPem, keyPem] = existing;
  if (caPem && certPem && keyPem && stillValid(certPem, now))
    return { caFile: files.ca, caPem, certPem, keyPem };

  await mkdir(dir, { recursive: true, mode: 0o700 });
  const made = await makeCaAndServer(now);
  await writeFile(files.key, made.keyPem, { mode: 0o600 });
  await writeFile(files.cert, made.certPem, { mode: 0o644 });
  await writeFile(files.ca, made.caPem, { mode: 0o644 });
  return { caFile: files.ca, ...made };
}

function stillValid(certPem: string, now: Date): boolean {
  try {
    return new Date(new X509Certificate(certPem).validTo).getTime() > now.getTime() + DAY_MS;
  } catch {
    return false;
  }
}

async function makeCaAndServer(now: Date): Promise<Omit<EmulatorTls, "caFile">> {
  const start = new Date(Math.floor(now.getTime() / 1000) * 1000 - 5 * 60_000);
  const caKeys = await newKeyPair();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: "CN=nbfleet Azure emulator CA, O=nbfleet",
    notBefore: start,
    notAfter: new Date(start.getTime() + 3650 * DAY_MS),
    signingAlgorithm: ALGORITHM,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const serverKeys = await newKeyPair();
  const server = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: "CN=localhost, O=nbfleet",
    issuer: ca.subject,
    notBefore: start,
    notAfter: new Date(start.getTime() + 825 * DAY_MS),
    signingAlgorithm: ALGORITHM,
    publicKey: serverKeys.publicKey,
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
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", serverKeys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" })
    .export({ format: "pem", type: "pkcs8" })
    .toString();
  return { caPem: `${ca.toString("pem")}\n`, certPem: `${server.toString("pem")}\n`, keyPem };
}

async function newKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString("hex");
}

import { execFileSync } from "node:child_process";
/**
 * Certificates for TLS tests, all made with the agent's X.509 library: a private CA that issues
 * loopback server certificates (a controller behind an operator's own CA), a self-signed
 * loopback pair written to files (for settings that take paths), and certificates as an operator
 * would bring them to an agent.
 */
import { createPrivateKey, randomBytes, webcrypto } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type CertificatePair, x509 } from "@nbfleet/agent";

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const DAY_MS = 86_400_000;
type KeyPair = webcrypto.CryptoKeyPair;

const LOOPBACK = new x509.SubjectAlternativeNameExtension([
  { type: "dns", value: "localhost" },
  { type: "ip", value: "127.0.0.1" },
  { type: "ip", value: "::1" },
]);

async function keyPair(): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as KeyPair;
}

async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return createPrivateKey({ key: der, format: "der", type: "pkcs8" })
    .export({ format: "pem", type: "pkcs8" })
    .toString();
}

/** A certificate for `keys`, signed by `issuer` (or by itself when there is none). */
function issue(options: {
  subject: string;
  keys: KeyPair;
  issuer?: { name: string; keys: KeyPair };
  notBefore: Date;
  days: number;
  extensions: x509.Extension[];
}): Promise<x509.X509Certificate> {
  return x509.X509CertificateGenerator.create({
    // A positive serial: the first hex digit is never 0.
    serialNumber: randomBytes(8).toString("hex").replace(/^./, "1"),
    subject: options.subject,
    issuer: options.issuer?.name ?? options.subject,
    notBefore: options.notBefore,
    notAfter: new Date(options.notBefore.getTime() + options.days * DAY_MS),
    signingAlgorithm: ALGORITHM,
    publicKey: options.keys.publicKey,
    signingKey: (options.issuer?.keys ?? options.keys).privateKey,
    extensions: options.extensions,
  });
}

async function pairOf(cert: x509.X509Certificate, keys: KeyPair): Promise<CertificatePair> {
  return { certPem: `${cert.toString("pem")}\n`, keyPem: await keyPem(keys.privateKey) };
}

const yesterday = () => new Date(Date.now() - DAY_MS);

export interface TestCa {
  caPem: string;
  /** A server certificate for localhost, 127.0.0.1 and ::1, signed by this CA. */
  issueServer(): Promise<CertificatePair>;
}

export async function makeTestCa(name = "nbfleet test CA"): Promise<TestCa> {
  const caKeys = await keyPair();
  const notBefore = yesterday();
  const ca = await issue({
    subject: `CN=${name}`,
    keys: caKeys,
    notBefore,
    days: 31,
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
      const cert = await issue({
        subject: "CN=localhost",
        keys,
        issuer: { name: ca.subject, keys: caKeys },
        notBefore,
        days: 31,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
          LOOPBACK,
          await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
        ],
      });
      return pairOf(cert, keys);
    },
  };
}

/**
 * A self-signed certificate for the loopback names, valid from yesterday for `days`, written as
 * `<name>.pem` and `<name>-key.pem` in `dir`. It is its own CA, so a client can trust exactly it.
 */
export async function selfSignedPair(
  dir: string,
  name: string,
  days = 3,
): Promise<{ cert: string; key: string }> {
  const keys = await keyPair();
  const pem = await pairOf(
    await issue({
      subject: "CN=localhost",
      keys,
      notBefore: yesterday(),
      days,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        LOOPBACK,
      ],
    }),
    keys,
  );
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}-key.pem`);
  writeFileSync(cert, pem.certPem);
  writeFileSync(key, pem.keyPem, { mode: 0o600 });
  return { cert, key };
}

/**
 * A certificate as an operator would bring one for notebooks.example.com: issued by a CA of
 * their own (not self-signed), or self-signed by some other tool.
 */
export async function operatorPair(options: {
  notBefore: Date;
  days: number;
  selfSigned?: boolean;
}): Promise<CertificatePair> {
  const keys = await keyPair();
  const cert = await issue({
    subject: "CN=notebooks.example.com",
    keys,
    ...(options.selfSigned ? {} : { issuer: { name: "CN=Example Operator CA", keys: await keyPair() } }),
    notBefore: options.notBefore,
    days: options.days,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.SubjectAlternativeNameExtension([{ type: "dns", value: "notebooks.example.com" }]),
    ],
  });
  return pairOf(cert, keys);
}

/**
 * The README's renewal of a pinned controller certificate, run as an operator would: a new
 * self-signed certificate for the loopback names made with openssl from the same key file,
 * written as `<name>.pem` in `dir`. Its fingerprint is new; its key is the old one.
 */
export function renewWithSameKey(keyFile: string, dir: string, name: string): string {
  const cert = join(dir, `${name}.pem`);
  execFileSync("openssl", [
    "req",
    "-x509",
    "-new",
    "-key",
    keyFile,
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
    "-days",
    "365",
    "-out",
    cert,
  ]);
  return cert;
}

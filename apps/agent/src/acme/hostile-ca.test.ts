/**
 * A CA that completes the ACME flow but hands back something else than was asked for: a
 * certificate for another name (signed for the agent's own key), or one for the right name but
 * another key. The agent refuses both before writing anything; the current pair stays.
 * The server speaks just enough ACME for acme-client (it does not check signatures).
 */
import { randomBytes, webcrypto } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { type Server, createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { makeTestCa } from "@nbfleet/testkit/test-ca";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataPaths } from "../config/paths.js";
import { AgentError } from "../errors.js";
import { ensureCertificate } from "../tls/ensure.js";
import { x509 } from "../tls/x509-library.js";
import { obtainCertificate } from "./obtain.js";

const HOSTNAME = "nb.example.com";
const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
type Trick = "other-name" | "other-key";

let server: Server;
let base: string;
let caFile: string;
let dir: string;
let trick: Trick;
let caKeys: webcrypto.CryptoKeyPair;

async function body(request: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of request) text += chunk;
  return text;
}

function reply(
  response: ServerResponse,
  status: number,
  content: unknown,
  headers: Record<string, string> = {},
) {
  response.writeHead(status, {
    "replay-nonce": randomBytes(12).toString("base64url"),
    "content-type": "application/json",
    ...headers,
  });
  response.end(
    content === undefined ? undefined : typeof content === "string" ? content : JSON.stringify(content),
  );
}

/** A leaf for the CSR's key (or a fresh one) naming `name`, signed by this CA. */
async function issueFor(csrDer: Buffer): Promise<string> {
  const csr = new x509.Pkcs10CertificateRequest(csrDer);
  const publicKey =
    trick === "other-key"
      ? ((await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair)
          .publicKey
      : await csr.publicKey.export();
  const name = trick === "other-name" ? "evil.example.com" : HOSTNAME;
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: "01",
    subject: `CN=${name}`,
    issuer: "CN=Hostile CA",
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: ALGORITHM,
    publicKey,
    signingKey: caKeys.privateKey,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: "dns", value: name }])],
  });
  return `${leaf.toString("pem")}\n`;
}

async function handle(request: IncomingMessage, response: ServerResponse) {
  const text = await body(request);
  const url = request.url ?? "";
  if (url === "/dir") {
    return reply(response, 200, {
      newNonce: `${base}/nonce`,
      newAccount: `${base}/account`,
      newOrder: `${base}/order`,
      revokeCert: `${base}/revoke`,
      keyChange: `${base}/key-change`,
    });
  }
  if (url === "/nonce") return reply(response, 200, undefined);
  if (url === "/account") return reply(response, 201, { status: "valid" }, { location: `${base}/acct/1` });
  const order = {
    status: "ready",
    identifiers: [{ type: "dns", value: HOSTNAME }],
    authorizations: [],
    finalize: `${base}/finalize/1`,
  };
  if (url === "/order") return reply(response, 201, order, { location: `${base}/order/1` });
  if (url === "/finalize/1") {
    const payload = JSON.parse(Buffer.from(JSON.parse(text).payload, "base64url").toString()) as {
      csr: string;
    };
    certificatePem = await issueFor(Buffer.from(payload.csr, "base64url"));
    return reply(response, 200, { ...order, status: "valid", certificate: `${base}/cert/1` });
  }
  if (url === "/order/1")
    return reply(response, 200, { ...order, status: "valid", certificate: `${base}/cert/1` });
  if (url === "/cert/1") {
    return reply(response, 200, certificatePem, { "content-type": "application/pem-certificate-chain" });
  }
  return reply(response, 404, { type: "urn:ietf:params:acme:error:malformed", detail: `no ${url}` });
}
let certificatePem = "";

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-acme-hostile-"));
  caKeys = (await webcrypto.subtle.generateKey(ALGORITHM, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const tls = await makeTestCa("hostile ACME TLS CA");
  const pair = await tls.issueServer();
  caFile = path.join(dir, "ca.pem");
  await writeFile(caFile, tls.caPem);
  server = createServer({ cert: pair.certPem, key: pair.keyPem }, (request, response) => {
    void handle(request, response).catch((error: unknown) => reply(response, 500, { detail: String(error) }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

async function attempt() {
  const paths = dataPaths(await mkdtemp(path.join(dir, "machine-")));
  await ensureCertificate(paths);
  const before = { cert: await readFile(paths.certFile, "utf8"), key: await readFile(paths.keyFile, "utf8") };
  const error = await obtainCertificate({
    settings: {
      directoryUrl: `${base}/dir`,
      email: null,
      hostname: HOSTNAME,
      caFile,
      challenge: "http-01",
      challengePort: 80,
    },
    paths,
    timeoutMs: 20_000,
  }).catch((caught: unknown) => caught);
  const after = { cert: await readFile(paths.certFile, "utf8"), key: await readFile(paths.keyFile, "utf8") };
  return { error: error as AgentError, kept: after.cert === before.cert && after.key === before.key };
}

describe("a CA that issues something else", () => {
  it("a certificate for another name: refused, naming both, the current pair kept", async () => {
    trick = "other-name";
    const { error, kept } = await attempt();
    expect(error).toBeInstanceOf(AgentError);
    expect(error.code).toBe("NBF_ACME_FAILED");
    expect(error.message).toBe(
      `the ACME server issued a certificate for DNS:evil.example.com, not ${HOSTNAME}; the current certificate was kept`,
    );
    expect(kept).toBe(true);
  });

  it("a certificate for another key: refused, the current pair kept", async () => {
    trick = "other-key";
    const { error, kept } = await attempt();
    expect(error.code).toBe("NBF_ACME_FAILED");
    expect(error.message).toMatch(
      /checking the issued chain failed: the key made for it does not belong to the issued chain/,
    );
    expect(kept).toBe(true);
  });
});

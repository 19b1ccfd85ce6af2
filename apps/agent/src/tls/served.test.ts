import { execFile } from "node:child_process";
import { once } from "node:events";
import https from "node:https";
import net, { type AddressInfo } from "node:net";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentError } from "../errors.js";
import { type CertificatePair, generateSelfSigned } from "./generate.js";
import { inspectCertificate } from "./inspect.js";
import { fetchServedCertificate } from "./served.js";

let pair: CertificatePair;
let server: https.Server;
let port: number;

beforeAll(async () => {
  pair = await generateSelfSigned({ hostnames: ["nb.example.org"] });
  server = https.createServer({ cert: pair.certPem, key: pair.keyPem }, (_req, res) => res.end("ok"));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("fetchServedCertificate", () => {
  it("returns the fingerprint and expiry of the certificate actually served", async () => {
    const info = inspectCertificate(pair.certPem);
    expect(await fetchServedCertificate("127.0.0.1", port)).toEqual({
      fingerprintSha256: info.fingerprintSha256,
      notBefore: info.notBefore,
      notAfter: info.notAfter,
    });
    expect((await fetchServedCertificate("localhost", port, "nb.example.org")).fingerprintSha256).toBe(
      info.fingerprintSha256,
    );
  });

  it("serves a certificate Python's ssl accepts for localhost and 127.0.0.1 when trusted", async () => {
    const script = [
      "import os, socket, ssl",
      "ctx = ssl.create_default_context(cadata=os.environ['CERT'])",
      "for name in ('localhost', '127.0.0.1'):",
      "    with socket.create_connection(('127.0.0.1', int(os.environ['PORT']))) as raw:",
      "        with ctx.wrap_socket(raw, server_hostname=name) as tls:",
      "            print(name, tls.version())",
    ].join("\n");
    const { stdout } = await promisify(execFile)("/usr/bin/python3", ["-c", script], {
      env: { CERT: pair.certPem, PORT: String(port) },
    });
    expect(stdout).toMatch(/^localhost TLSv1\.[23]\n127\.0\.0\.1 TLSv1\.[23]\n$/);
  });

  it("gives up after the timeout when the port never speaks TLS", async () => {
    const silent = net.createServer(() => {});
    silent.listen(0, "127.0.0.1");
    await once(silent, "listening");
    const silentPort = (silent.address() as AddressInfo).port;
    try {
      const started = Date.now();
      const error = await fetchServedCertificate("127.0.0.1", silentPort, undefined, {
        timeoutMs: 300,
      }).catch((e) => e);
      expect(error).toBeInstanceOf(AgentError);
      expect(error.code).toBe("NBF_TLS_UNREACHABLE");
      expect(error.message).toBe(
        `no TLS certificate from 127.0.0.1:${silentPort}: connected, but no TLS handshake within 300 ms`,
      );
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      silent.close();
    }
  });

  it("reports a refused connection", async () => {
    const closed = net.createServer();
    closed.listen(0, "127.0.0.1");
    await once(closed, "listening");
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await expect(fetchServedCertificate("127.0.0.1", closedPort)).rejects.toThrow(/ECONNREFUSED/);
  });
});

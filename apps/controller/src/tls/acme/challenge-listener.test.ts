import { X509Certificate } from "node:crypto";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { connect } from "node:tls";
import { type ChallengeToAnswer, temporaryCertificate } from "@nbfleet/acme";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACME_TLS_PROTOCOL, AlpnChallengeListener } from "./challenge-listener.js";

const NAME = "ctl.example.com";
const listener = new AlpnChallengeListener();
let server: ReturnType<typeof createServer>;
let port: number;
let servedFingerprint: string;

beforeAll(async () => {
  const served = await temporaryCertificate(NAME);
  servedFingerprint = new X509Certificate(served.certPem).fingerprint256;
  server = createServer(
    { cert: served.certPem, key: served.keyPem, ...listener.serverOptions() },
    (_req, res) => res.end("api\n"),
  );
  listener.attach(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));

interface Seen {
  fingerprint?: string;
  acmeExtension?: boolean;
  alpn?: string | false | null;
  error?: string;
  closedByServer?: boolean;
}

function hello(servername: string, alpn?: string[]): Promise<Seen> {
  return new Promise((resolve) => {
    const socket = connect(
      {
        host: "127.0.0.1",
        port,
        servername,
        rejectUnauthorized: false,
        ...(alpn ? { ALPNProtocols: alpn } : {}),
      },
      () => {
        const raw = socket.getPeerX509Certificate();
        const seen: Seen = {
          fingerprint: raw?.fingerprint256,
          // The acmeIdentifier extension's OID (1.3.6.1.5.5.7.1.31), DER-encoded, in the certificate.
          acmeExtension: raw ? raw.raw.includes(Buffer.from("2b0601050507011f", "hex")) : false,
          alpn: socket.alpnProtocol,
        };
        socket.once("close", () => resolve({ ...seen, closedByServer: true }));
        setTimeout(() => {
          socket.destroy();
          resolve({ ...seen, closedByServer: false });
        }, 1000);
      },
    );
    socket.on("error", (error) => resolve({ error: error.message }));
  });
}

const authz = (value: string) =>
  ({ identifier: { type: "dns", value } }) as unknown as ChallengeToAnswer["authz"];

describe("TLS-ALPN-01 on the controller's own listener", () => {
  it("only an acme-tls/1 client for the pending name sees the challenge certificate, and is closed", async () => {
    const answer = await listener.answer({
      type: "tls-alpn-01",
      hostname: NAME.toUpperCase(),
      token: "token",
      keyAuthorization: "token.thumbprint",
      authz: authz(NAME),
    });
    try {
      const challenge = await hello(NAME, [ACME_TLS_PROTOCOL]);
      expect(challenge).toMatchObject({ alpn: ACME_TLS_PROTOCOL, acmeExtension: true, closedByServer: true });
      expect(challenge.fingerprint).not.toBe(servedFingerprint);

      // Everybody else, during the validation: the served certificate, as before.
      const others: Array<[string, string[] | undefined]> = [
        [NAME, undefined],
        [NAME, ["h2", "http/1.1"]],
        ["other.example.com", [ACME_TLS_PROTOCOL, "http/1.1"]],
      ];
      for (const [servername, alpn] of others) {
        expect(await hello(servername, alpn), `${servername} ${alpn}`).toMatchObject({
          fingerprint: servedFingerprint,
          acmeExtension: false,
          alpn: alpn ? "http/1.1" : false,
        });
      }
      // Asking for acme-tls/1 alone for another name: refused, no certificate of any kind.
      expect((await hello("other.example.com", [ACME_TLS_PROTOCOL])).error).toMatch(
        /no application protocol/,
      );
    } finally {
      await answer.close();
    }
    // Once closed the challenge certificate is gone: acme-tls/1 alone is refused.
    expect((await hello(NAME, [ACME_TLS_PROTOCOL])).error).toMatch(/no application protocol/);
    expect(await hello(NAME, ["http/1.1"])).toMatchObject({
      fingerprint: servedFingerprint,
      alpn: "http/1.1",
    });
  });
});

import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSelfSigned } from "../tls/generate.js";
import { apiUrl, normalizeBaseUrl, probeApi, requestApi } from "./http.js";
import { KernelChannel } from "./kernel-channel.js";

const endpoint = { host: "127.0.0.1", port: 9999 };

describe("apiUrl", () => {
  it("joins any spelling of base_url with the API path", () => {
    for (const baseUrl of ["/", "", "//"]) {
      expect(apiUrl({ ...endpoint, baseUrl }, "api").href).toBe(
        "https://127.0.0.1:9999/api?no_track_activity=1",
      );
    }
    for (const baseUrl of ["/nb", "/nb/", "nb", "//nb//"]) {
      expect(apiUrl({ ...endpoint, baseUrl }, "/api/kernels").href).toBe(
        "https://127.0.0.1:9999/nb/api/kernels?no_track_activity=1",
      );
    }
    expect(normalizeBaseUrl("/a/b/")).toBe("/a/b/");
  });

  it("brackets IPv6 hosts and speaks wss for channels", () => {
    expect(apiUrl({ host: "::1", port: 8888, baseUrl: "/" }, "api/kernels/k1/channels", "wss").href).toBe(
      "wss://[::1]:8888/api/kernels/k1/channels?no_track_activity=1",
    );
  });
});

describe("requestApi and probeApi", () => {
  let dir: string;
  let servedCert: string;
  let otherCert: string;
  let server: https.Server;
  let port: number;
  const seen: Array<{ url: string; authorization: string | undefined }> = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "nbf-http-pin-"));
    const served = await generateSelfSigned({ hostnames: ["localhost"] });
    const other = await generateSelfSigned({ hostnames: ["localhost"] });
    servedCert = path.join(dir, "served.pem");
    otherCert = path.join(dir, "other.pem");
    await writeFile(servedCert, served.certPem);
    await writeFile(otherCert, other.certPem);
    server = https.createServer({ cert: served.certPem, key: served.keyPem }, (req, res) => {
      seen.push({ url: req.url ?? "", authorization: req.headers.authorization });
      res.writeHead(200, { "content-type": "application/json" }).end('{"version":"6.4.12"}');
    });
    server.on("upgrade", (req, socket) => {
      seen.push({ url: req.url ?? "", authorization: req.headers.authorization });
      socket.destroy();
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  it("say what failed when nothing listens", async () => {
    const target = { host: "127.0.0.1", port: 1, baseUrl: "/", certFile: servedCert };
    await expect(requestApi(target, { path: "api", timeoutMs: 2000 })).rejects.toThrow(
      "GET https://127.0.0.1:1/api: connect ECONNREFUSED",
    );
    const probe = await probeApi(target, 2000);
    expect(probe.ok).toBe(false);
    expect(probe.ok ? "" : probe.error).toContain("ECONNREFUSED");
  });

  it("talk to the server showing the profile's certificate", async () => {
    const target = { host: "127.0.0.1", port, baseUrl: "/", certFile: servedCert };
    const res = await requestApi(target, { path: "api/status", token: "agent-token", timeoutMs: 2000 });
    expect(res.status).toBe(200);
    expect(seen.at(-1)).toEqual({
      url: "/api/status?no_track_activity=1",
      authorization: "token agent-token",
    });
    expect(await probeApi(target, 2000)).toEqual({ ok: true, version: "6.4.12" });
  });

  it("send nothing — not the agent token — to a server showing another certificate", async () => {
    const before = seen.length;
    const target = { host: "127.0.0.1", port, baseUrl: "/", certFile: otherCert };
    await expect(
      requestApi(target, { path: "api/status", token: "agent-token", timeoutMs: 2000 }),
    ).rejects.toThrow(/served a certificate with SHA-256 .* not the profile's .*nothing was sent to it/);
    const probe = await probeApi(target, 2000);
    expect(probe.ok ? "" : probe.error).toMatch(/not the profile's/);
    await expect(
      KernelChannel.open(apiUrl(target, "api/kernels/k1/channels", "wss"), "agent-token", 2000, target),
    ).rejects.toThrow(/not the profile's/);
    expect(seen.length).toBe(before);
  });

  it("refuse to run without the profile's certificate to pin", async () => {
    const target = { host: "127.0.0.1", port, baseUrl: "/", certFile: path.join(dir, "missing.pem") };
    await expect(requestApi(target, { path: "api", timeoutMs: 2000 })).rejects.toThrow(
      /cannot read the notebook's certificate .*missing\.pem/,
    );
  });
});

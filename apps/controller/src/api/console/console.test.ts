import { join } from "node:path";
import { brotliDecompressSync } from "node:zlib";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import {
  FAKE_CONSOLE_INDEX as INDEX,
  FAKE_CONSOLE_SCRIPT as SCRIPT,
  fakeConsoleBuild as fakeBuild,
} from "@nbfleet/testkit/fake-console-build";
import { afterEach, describe, expect, it } from "vitest";
import { CONSOLE_BUILD_COMMAND } from "./locate.js";

let controller: TestController;
afterEach(async () => {
  await controller?.close();
});

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

describe("web console", () => {
  it("serves index.html for every console page, uncached, with the security headers", async () => {
    controller = await startTestController({ settings: { consoleDir: fakeBuild() }, listen: false });
    for (const url of [
      "/",
      "/sign-in",
      "/vms/web-1",
      "/operations",
      "/operations/op_123",
      "/events",
      "/tokens",
      "/policies",
      "/vms/web-1?tab=logs",
    ]) {
      const res = await controller.app.inject({ method: "GET", url });
      expect(res.statusCode, url).toBe(200);
      expect(res.body, url).toBe(INDEX);
      expect(res.headers["content-type"], url).toMatch(/^text\/html/);
      expect(res.headers["cache-control"], url).toBe("no-cache");
      expect(res.headers, url).toMatchObject(SECURITY_HEADERS);
    }
  });

  it("caches assets for good and serves brotli or gzip when accepted", async () => {
    controller = await startTestController({ settings: { consoleDir: fakeBuild() }, listen: false });
    const { app } = controller;
    const url = "/assets/app-3f9a1c.js";
    const br = await app.inject({ method: "GET", url, headers: { "accept-encoding": "gzip, deflate, br" } });
    expect(br.statusCode).toBe(200);
    expect(br.headers["content-encoding"]).toBe("br");
    expect(br.headers["content-type"]).toMatch(/javascript/);
    expect(br.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(br.headers.vary).toMatch(/accept-encoding/i);
    expect(br.headers).toMatchObject(SECURITY_HEADERS);
    expect(brotliDecompressSync(br.rawPayload).toString()).toBe(SCRIPT);

    const gz = await app.inject({ method: "GET", url, headers: { "accept-encoding": "gzip" } });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    const plain = await app.inject({ method: "GET", url });
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(plain.body).toBe(SCRIPT);
    expect(plain.headers["cache-control"]).toBe("public, max-age=31536000, immutable");

    const missing = await app.inject({ method: "GET", url: "/assets/app-000000.js" });
    expect(missing.statusCode).toBe(404);
    expect(missing.headers["cache-control"] ?? "").not.toContain("immutable");
    for (const hostile of ["/assets/../secret.txt", "/assets/%2e%2e/secret.txt", "/assets/..%2fsecret.txt"]) {
      const res = await app.inject({ method: "GET", url: hostile });
      expect(res.statusCode, hostile).toBeGreaterThanOrEqual(400);
      expect(res.body, hostile).not.toContain("not served");
    }
    expect((await app.inject({ method: "GET", url: "/secret.txt" })).statusCode).toBe(404);
  });

  it("leaves the API's prefixes alone: their answers, their 404s, no console headers", async () => {
    controller = await startTestController({ settings: { consoleDir: fakeBuild() }, listen: false });
    const { app, adminToken } = controller;
    for (const url of ["/v1/nope", "/v1", "/internal/x", "/healthz/x", "/metrics/x", "/docs/nope.html"]) {
      const res = await app.inject({ method: "GET", url });
      expect(res.statusCode, url).toBe(404);
      expect(res.headers["content-type"], url).toMatch(/json/);
      expect(res.json().error.code, url).toBe("NBF_ROUTE_NOT_FOUND");
    }
    const api = await app.inject({
      method: "GET",
      url: "/v1/vms",
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(api.statusCode).toBe(200);
    expect(api.headers["content-security-policy"]).toBeUndefined();
    expect((await app.inject({ method: "GET", url: "/healthz" })).headers["content-type"]).toMatch(/json/);
  });

  it("answers 503 saying how to build the console when there is no build, and the API still works", async () => {
    const missing = join(makeDataDir("nbf-console-none-"), "dist");
    controller = await startTestController({ settings: { consoleDir: missing }, listen: false });
    const { app, adminToken } = controller;
    for (const url of ["/", "/vms/web-1", "/assets/app.js"]) {
      const res = await app.inject({ method: "GET", url });
      expect(res.statusCode, url).toBe(503);
      expect(res.headers["content-type"]).toMatch(/^text\/plain/);
      expect(res.body).toContain(CONSOLE_BUILD_COMMAND);
      expect(res.body).toContain(missing);
    }
    const api = await app.inject({
      method: "GET",
      url: "/v1/vms",
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(api.statusCode).toBe(200);
  });
});

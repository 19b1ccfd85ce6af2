import { describe, expect, it } from "vitest";
import { apiUrl, normalizeBaseUrl, probeApi, requestApi } from "./http.js";

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
  it("say what failed when nothing listens", async () => {
    const target = { host: "127.0.0.1", port: 1, baseUrl: "/" };
    await expect(requestApi(target, { path: "api", timeoutMs: 2000 })).rejects.toThrow(
      "GET https://127.0.0.1:1/api: connect ECONNREFUSED",
    );
    const probe = await probeApi(target, 2000);
    expect(probe.ok).toBe(false);
    expect(probe.ok ? "" : probe.error).toContain("ECONNREFUSED");
  });
});

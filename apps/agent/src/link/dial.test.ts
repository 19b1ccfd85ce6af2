import { describe, expect, it } from "vitest";
import { connectUrl, isLoopback } from "./dial.js";

describe("connectUrl", () => {
  it("turns a controller base URL into its agent endpoint", () => {
    expect(connectUrl("http://127.0.0.1:7070").href).toBe("ws://127.0.0.1:7070/v1/agent/connect");
    expect(connectUrl("https://c.example/").href).toBe("wss://c.example/v1/agent/connect");
    expect(connectUrl("https://c.example/nbfleet/").href).toBe("wss://c.example/nbfleet/v1/agent/connect");
    expect(connectUrl("wss://c.example/v1/agent/connect").href).toBe("wss://c.example/v1/agent/connect");
    expect(connectUrl("ws://[::1]:7070").href).toBe("ws://[::1]:7070/v1/agent/connect");
  });

  it("refuses what it cannot dial or what would leak a secret into a URL", () => {
    expect(() => connectUrl("c.example:7070")).toThrow(/must start with|not a controller URL/);
    expect(() => connectUrl("ftp://c.example")).toThrow(/must start with/);
    expect(() => connectUrl("https://user:pw@c.example")).toThrow(/must not carry credentials/);
    expect(() => connectUrl("https://c.example/?token=x")).toThrow(/query/);
  });

  it("knows loopback hosts", () => {
    expect(isLoopback(connectUrl("http://127.0.0.1:7070"))).toBe(true);
    expect(isLoopback(connectUrl("http://[::1]:7070"))).toBe(true);
    expect(isLoopback(connectUrl("http://localhost"))).toBe(true);
    expect(isLoopback(connectUrl("http://10.0.0.4:7070"))).toBe(false);
  });
});

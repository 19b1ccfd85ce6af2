import { Resolver } from "node:dns/promises";
import { describe, expect, it } from "vitest";
import { sharedPebble } from "./shared-pebble.js";

describe("sharedPebble", () => {
  it("is one pebble for every caller, its DNS answering the names added and refusing bad ones", async () => {
    const first = await sharedPebble("one.shared-pebble.test");
    const again = await sharedPebble("two.shared-pebble.test");
    expect(again.directoryUrl).toBe(first.directoryUrl);
    expect(again.dnsAddress).toBe(first.dnsAddress);
    expect(await first.rootPem()).toContain("BEGIN CERTIFICATE");

    const dns = new Resolver({ timeout: 2000, tries: 1 });
    dns.setServers([first.dnsAddress]);
    expect(await dns.resolve4("two.shared-pebble.test")).toEqual(["127.0.0.1"]);
    await expect(dns.resolve4("three.shared-pebble.test")).rejects.toMatchObject({ code: "ENOTFOUND" });
    await first.addNames("three.shared-pebble.test");
    expect(await dns.resolve4("three.shared-pebble.test")).toEqual(["127.0.0.1"]);
    expect(await first.dnsQueries()).toContain("A three.shared-pebble.test");

    await expect(first.addNames("not a name; rm -rf /")).rejects.toThrow(
      /400: not a DNS name: "not a name; rm -rf \/"/,
    );
    await expect(first.addNames("")).rejects.toThrow(/not a DNS name: ""/);
  });
});

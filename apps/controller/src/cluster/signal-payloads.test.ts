import { describe, expect, it } from "vitest";
import { newId } from "../store/ids.js";
import { MAX_PAYLOAD_BYTES, decodePayload, encodePayloads } from "./signal-payloads.js";

describe("signal payloads", () => {
  it("splits 10,000 command ids into payloads each well below PostgreSQL's 8000-byte limit, none lost", () => {
    const ids = Array.from({ length: 10_000 }, () => newId("cmd"));
    const payloads = encodePayloads(newId("rep"), "command.queued", ids);
    const sizes = payloads.map((p) => Buffer.byteLength(p));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
    expect(MAX_PAYLOAD_BYTES).toBeLessThan(8000);
    // Full payloads: 29 bytes an id (26 characters, quotes, comma), about 200 ids each, so 50.
    const perPayload = Math.floor((MAX_PAYLOAD_BYTES - 80) / 29);
    expect(payloads.length).toBe(Math.ceil(ids.length / perPayload));
    expect(payloads.length).toBeGreaterThan(1);
    const back = payloads.map((p) => decodePayload(p)!);
    expect(back.every((m) => m.kind === "command.queued")).toBe(true);
    expect(back.flatMap((m) => m.ids)).toEqual(ids);
  });

  it("counts bytes, not characters, and keeps a kind without ids as one payload", () => {
    const names = Array.from({ length: 500 }, (_, i) => `vm-ü€-${i}`);
    const payloads = encodePayloads("o", "vm.retired", names, 200);
    for (const payload of payloads) expect(Buffer.byteLength(payload)).toBeLessThanOrEqual(200);
    expect(payloads.flatMap((p) => decodePayload(p)!.ids)).toEqual(names);
    expect(encodePayloads("o", "events", []).map((p) => decodePayload(p))).toEqual([
      { origin: "o", kind: "events", ids: [] },
    ]);
  });

  it("refuses an id that can never fit, and ignores payloads that are not signals", () => {
    expect(() => encodePayloads("o", "k", ["x".repeat(300)], 200)).toThrow(/does not fit a payload/);
    for (const junk of [undefined, "", "nope", "[]", '{"o":1,"k":"x","i":[]}', '{"o":"a","k":"x","i":[1]}'])
      expect(decodePayload(junk)).toBeNull();
  });
});

import { describe, expect, it } from "vitest";
import { clipReason } from "./socket-close.js";

describe("clipReason", () => {
  it("keeps a close reason within 123 bytes without splitting a character", () => {
    expect(clipReason("short")).toBe("short");
    const ascii = "x".repeat(200);
    expect(clipReason(ascii)).toBe("x".repeat(123));
    // 61 two-byte characters are 122 bytes; the 62nd would straddle byte 123.
    const wide = "é".repeat(80);
    const clipped = clipReason(wide);
    expect(Buffer.byteLength(clipped)).toBe(122);
    expect(clipped).toBe("é".repeat(61));
  });
});

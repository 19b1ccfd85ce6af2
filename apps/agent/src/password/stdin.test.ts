import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { generatePassword, readPassword } from "./stdin.js";

function streamOf(...chunks: string[]) {
  const stream = new PassThrough();
  for (const chunk of chunks) stream.write(chunk);
  return stream;
}

describe("readPassword", () => {
  it("reads the first line without its line ending and leaves the rest on the stream", async () => {
    const stream = streamOf("s3cr", "et pass\r\nnext line\n");
    expect(await readPassword(stream)).toBe("s3cret pass");
    expect(stream.read()?.toString()).toBe("next line\n");
  });

  it("takes a final line without newline when the stream ends", async () => {
    const stream = streamOf("pässwörd");
    stream.end();
    expect(await readPassword(stream)).toBe("pässwörd");
  });

  it("keeps multi-byte characters split across chunks intact", async () => {
    const bytes = Buffer.from("ключ\n", "utf8");
    const stream = new PassThrough();
    stream.write(bytes.subarray(0, 3));
    stream.write(bytes.subarray(3));
    expect(await readPassword(stream)).toBe("ключ");
  });

  it("refuses an empty line and an empty stream", async () => {
    await expect(readPassword(streamOf("\n"))).rejects.toThrow("an empty password was given on stdin");
    const empty = new PassThrough();
    empty.end();
    await expect(readPassword(empty)).rejects.toMatchObject({ code: "NBF_PASSWORD_INVALID" });
  });

  it("refuses an overlong line without putting it in the error", async () => {
    const error = await readPassword(streamOf("z".repeat(5000))).catch((e: Error) => e);
    expect(error).toMatchObject({ code: "NBF_PASSWORD_INVALID" });
    expect((error as Error).message).not.toContain("zzz");
  });

  it("times out clearly when nothing arrives", async () => {
    const started = Date.now();
    await expect(readPassword(new PassThrough(), { timeoutMs: 200 })).rejects.toThrow(
      /no password arrived on stdin within 200 ms; pipe it in/,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });
});

describe("generatePassword", () => {
  it("makes 4 groups of 5 unambiguous characters, different every time", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const password = generatePassword();
      expect(password).toMatch(/^[0-9a-hjkmnp-tv-z]{5}(-[0-9a-hjkmnp-tv-z]{5}){3}$/);
      seen.add(password);
    }
    expect(seen.size).toBe(200);
  });
});

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { tarEntry } from "@nbfleet/testkit/artifact-tarball";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inspectArtifact } from "./inspect.js";

const entry = tarEntry;
const END = Buffer.alloc(1024);
const manifest = (fields: Record<string, unknown> = {}) =>
  entry("manifest.json", {
    body: JSON.stringify({ name: "nbfleet-agent", version: "1.2.3", entry: "nbfleet-agent.mjs", ...fields }),
  });
const bundle = entry("nbfleet-agent.mjs", { body: "console.log('agent')\n" });
const gz = (...parts: Buffer[]) => gzipSync(Buffer.concat([...parts, END]));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-inspect-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

let n = 0;
async function inspectBytes(bytes: Buffer, limits?: { maxUnpackedBytes?: number }) {
  const file = path.join(dir, `a${n++}.tar.gz`);
  await writeFile(file, bytes);
  return inspectArtifact(file, limits);
}
async function refusal(bytes: Buffer, limits?: { maxUnpackedBytes?: number }): Promise<string> {
  const error = await inspectBytes(bytes, limits).then(
    () => undefined,
    (e: unknown) => e as { code?: string; message: string },
  );
  expect(error, "the artifact was accepted").toBeDefined();
  expect(error!.code).toBe("NBF_ARTIFACT_INVALID");
  return error!.message;
}

describe("inspectArtifact", () => {
  it("accepts a well-formed artifact and reads its manifest's version", async () => {
    const result = await inspectBytes(
      gz(entry("node_modules/", { type: "5" }), manifest(), bundle, entry("node_modules/x/index.js")),
    );
    expect(result).toMatchObject({ version: "1.2.3", entries: 4, manifest: { name: "nbfleet-agent" } });
  });

  it("accepts entries written as ./name", async () => {
    const result = await inspectBytes(
      gz(
        entry("./manifest.json", { body: '{"name":"nbfleet-agent","version":"2.0.0-rc.1"}' }),
        entry("./nbfleet-agent.mjs"),
      ),
    );
    expect(result.version).toBe("2.0.0-rc.1");
  });

  it("refuses a truncated gzip stream", async () => {
    const whole = gz(manifest(), bundle, entry("big", { body: Buffer.alloc(100_000, 7) }));
    expect(await refusal(whole.subarray(0, Math.floor(whole.length / 2)))).toMatch(/gzip stream ended early/);
  });

  it("refuses a tar cut short inside a complete gzip stream", async () => {
    const tar = Buffer.concat([manifest(), bundle, entry("big", { body: Buffer.alloc(10_000, 7) })]);
    const message = await refusal(gzipSync(tar.subarray(0, tar.length - 3000)));
    expect(message).toMatch(/not a valid tar archive .*Truncated input/);
  });

  it("refuses bytes that are not gzip, and gzip that is not tar", async () => {
    expect(await refusal(Buffer.from("not really an artifact"))).toMatch(/not a valid gzip stream/);
    const m2 = await refusal(gzipSync(Buffer.alloc(2048, 0x41)));
    expect(m2).toMatch(/not a valid tar archive .*checksum/);
  });

  it("refuses a path with ..", async () => {
    expect(await refusal(gz(manifest(), bundle, entry("node_modules/../../evil.sh")))).toMatch(
      /"node_modules\/..\/..\/evil.sh" climbs out/,
    );
  });

  it("refuses an absolute path", async () => {
    expect(await refusal(gz(manifest(), bundle, entry("/etc/cron.d/evil")))).toMatch(
      /"\/etc\/cron.d\/evil" has an absolute path/,
    );
  });

  it("refuses symbolic and hard links, wherever they point", async () => {
    expect(await refusal(gz(manifest(), bundle, entry("lib", { type: "2", link: "/etc" })))).toMatch(
      /"lib" is a symbolic link \(to "\/etc"\)/,
    );
    expect(
      await refusal(gz(manifest(), bundle, entry("inside", { type: "2", link: "manifest.json" }))),
    ).toMatch(/symbolic link/);
    expect(await refusal(gz(manifest(), bundle, entry("hard", { type: "1", link: "../x" })))).toMatch(
      /"hard" is a hard link/,
    );
  });

  it("refuses devices and fifos", async () => {
    expect(await refusal(gz(manifest(), bundle, entry("fifo", { type: "6" })))).toMatch(/"fifo" is a FIFO/);
  });

  it("refuses a second copy of a file (it would replace the checked one)", async () => {
    expect(await refusal(gz(manifest(), bundle, manifest({ version: "9.9.9" })))).toMatch(
      /"manifest.json" appears twice/,
    );
  });

  it("refuses a wrong or missing manifest and a missing bundle, naming the field", async () => {
    expect(await refusal(gz(bundle))).toMatch(/no manifest.json/);
    expect(await refusal(gz(manifest()))).toMatch(/no nbfleet-agent.mjs/);
    expect(await refusal(gz(manifest({ name: "other" }), bundle))).toMatch(
      /names "other", not "nbfleet-agent"/,
    );
    expect(await refusal(gz(manifest({ version: "latest" }), bundle))).toMatch(/version "latest"/);
    expect(await refusal(gz(manifest({ version: "../1.0.0" }), bundle))).toMatch(/version "..\/1.0.0"/);
    expect(await refusal(gz(manifest({ entry: "other.mjs" }), bundle))).toMatch(/entry "other.mjs"/);
    expect(await refusal(gz(entry("manifest.json", { body: "{nope" }), bundle))).toMatch(
      /manifest.json is not JSON/,
    );
  });

  it("stops a gzip bomb at the unpacked-size bound", async () => {
    const bomb = gz(manifest(), bundle, entry("zeros", { body: Buffer.alloc(4 * 1024 * 1024) }));
    expect(bomb.length).toBeLessThan(64 * 1024);
    expect(await refusal(bomb, { maxUnpackedBytes: 1024 * 1024 })).toMatch(
      /unpacks to more than 1048576 bytes/,
    );
  });
});

/**
 * Agent artifact tarballs written by hand for tests: each ustar entry exactly as the test says
 * (a `..` path, an absolute path, a link), which a tar library would refuse or rewrite.
 */
import { gzipSync } from "node:zlib";

export interface TarEntryOptions {
  /** ustar type flag: "0" file, "1" hard link, "2" symlink, "5" directory, "6" FIFO. */
  type?: string;
  body?: string | Buffer;
  link?: string;
}

export function tarEntry(name: string, options: TarEntryOptions = {}): Buffer {
  const body = Buffer.isBuffer(options.body) ? options.body : Buffer.from(options.body ?? "");
  const header = Buffer.alloc(512);
  const put = (text: string, offset: number, length: number) => header.write(text, offset, length, "utf8");
  put(name, 0, 100);
  put("0000644\0", 100, 8);
  put("0000000\0", 108, 8);
  put("0000000\0", 116, 8);
  put(`${body.length.toString(8).padStart(11, "0")}\0`, 124, 12);
  put("00000000000\0", 136, 12);
  put("        ", 148, 8);
  put(options.type ?? "0", 156, 1);
  put(options.link ?? "", 157, 100);
  put("ustar\0", 257, 6);
  put("00", 263, 2);
  let sum = 0;
  for (const byte of header) sum += byte;
  put(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8);
  return Buffer.concat([header, body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

/** The entries, the two zero blocks that end a tar, gzip'd. */
export function tarGz(...entries: Buffer[]): Buffer {
  return gzipSync(Buffer.concat([...entries, Buffer.alloc(1024)]));
}

/** A minimal artifact that passes the publish checks: a manifest of `version` and a bundle. */
export function fakeArtifact(
  version: string,
  bundleText = `console.log(${JSON.stringify(version)})\n`,
): Buffer {
  return tarGz(
    tarEntry("manifest.json", {
      body: JSON.stringify({ name: "nbfleet-agent", version, entry: "nbfleet-agent.mjs" }),
    }),
    tarEntry("nbfleet-agent.mjs", { body: bundleText }),
  );
}

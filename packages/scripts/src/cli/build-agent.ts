/**
 * `pnpm build:agent --version V --out FILE`: builds an agent artifact of version V from this
 * checkout (the version baked into the bundle and its manifest) and writes it to FILE, ready for
 * `nbfleet agent publish FILE`. Prints what it built as JSON (file, version, sha256, bytes).
 */
import { copyFile, mkdtemp, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { isArtifactVersion } from "@nbfleet/shared/artifact-signature";
import { buildAgentArtifact } from "../artifact/build.js";

const USAGE = "usage: pnpm build:agent --version <MAJOR.MINOR.PATCH[-pre]> --out <file.tar.gz>";

async function main(): Promise<void> {
  const { values } = parseArgs({
    // pnpm passes a lone `--` through when the caller wrote one.
    args: process.argv.slice(2).filter((arg) => arg !== "--"),
    options: { version: { type: "string" }, out: { type: "string" }, help: { type: "boolean", short: "h" } },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.version || !values.out) throw Object.assign(new Error(USAGE), { code: "NBF_USAGE" });
  if (!isArtifactVersion(values.version)) {
    throw Object.assign(new Error(`--version ${JSON.stringify(values.version)} is not a version; ${USAGE}`), {
      code: "NBF_USAGE",
    });
  }
  const out = path.resolve(values.out);
  const work = await mkdtemp(path.join(tmpdir(), "nbfleet-build-agent-"));
  try {
    const artifact = await buildAgentArtifact({ outDir: work, version: values.version, force: true });
    // Beside the destination first, then a rename: FILE is never half written.
    const temp = `${out}.${process.pid}.partial`;
    await copyFile(artifact.file, temp);
    await rename(temp, out);
    console.log(
      JSON.stringify({
        file: out,
        version: artifact.version,
        sha256: artifact.sha256,
        bytes: artifact.bytes,
      }),
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  const e = error as { code?: string; message?: string };
  console.error(`build:agent: ${e.message ?? String(error)}${e.code ? ` [${e.code}]` : ""}`);
  process.exitCode = e.code === "NBF_USAGE" || e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ? 2 : 1;
});

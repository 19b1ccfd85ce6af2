/**
 * Unpacks a checked artifact beside the running version: into `<dir>.partial` with the system
 * `tar` (as the bootstrap does; Windows 10 and later ship one too), refusing entry names that
 * would land outside it, then checks its manifest names the version expected and renames it into
 * place. A failure leaves no directory behind.
 */
import { execFile } from "node:child_process";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { AgentError } from "../errors.js";

const run = promisify(execFile);
const MAX_LISTING = 16 * 1024 * 1024;

export const AGENT_BUNDLE = "nbfleet-agent.mjs";

export async function unpackArtifact(file: string, dir: string, version: string): Promise<void> {
  const refused = (why: string) =>
    new AgentError("NBF_ARTIFACT_REFUSED", `artifact ${version}: ${why}; nothing was switched`, { version });
  const partial = `${dir}.partial`;
  await rm(partial, { recursive: true, force: true });
  try {
    const listing = await tar(["-tzf", file]).catch((error: Error) => {
      throw refused(`not a readable gzip tar (${error.message.split("\n")[0]})`);
    });
    for (const name of listing.split("\n").filter(Boolean)) {
      const parts = name.replace(/\\/g, "/").split("/");
      if (name.startsWith("/") || /^[A-Za-z]:/.test(name) || parts.includes("..")) {
        throw refused(`entry ${JSON.stringify(name)} would land outside the version directory`);
      }
    }
    await mkdir(partial, { recursive: true, mode: 0o755 });
    await tar(["-xzf", file, "-C", partial, "--no-same-owner"]).catch((error: Error) => {
      throw refused(`could not be unpacked (${error.message.split("\n")[0]})`);
    });
    const manifest = await readManifest(path.join(partial, "manifest.json")).catch(() => null);
    if (!manifest) throw refused("it has no readable manifest.json");
    if (manifest.name !== "nbfleet-agent") {
      throw refused(`its manifest names ${JSON.stringify(manifest.name)}, not nbfleet-agent`);
    }
    if (manifest.version !== version) {
      throw refused(`its manifest says version ${JSON.stringify(manifest.version)}, not ${version}`);
    }
    if (!(await isFile(path.join(partial, AGENT_BUNDLE)))) throw refused(`it has no ${AGENT_BUNDLE}`);
    await rm(dir, { recursive: true, force: true });
    await rename(partial, dir);
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error;
  }
}

async function tar(args: string[]): Promise<string> {
  const { stdout } = await run("tar", args, { maxBuffer: MAX_LISTING, windowsHide: true });
  return stdout;
}

async function readManifest(file: string): Promise<{ name?: unknown; version?: unknown }> {
  return JSON.parse(await readFile(file, "utf8")) as { name?: unknown; version?: unknown };
}

async function isFile(file: string): Promise<boolean> {
  return stat(file).then(
    (info) => info.isFile(),
    () => false,
  );
}

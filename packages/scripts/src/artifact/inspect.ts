/**
 * Checks an agent artifact someone hands the controller (`nbfleet agent publish`) before it is
 * stored, signed and offered to guests: a gzip'd tar whose entries are plain files and
 * directories under relative paths (no `..`, no absolute path, no links, no devices), with a
 * `manifest.json` naming an `nbfleet-agent` of a valid version and the `nbfleet-agent.mjs`
 * bundle beside it, all within size bounds. Nothing is unpacked: entries are read as a stream.
 * Every refusal names what was wrong (ScriptsError NBF_ARTIFACT_INVALID).
 */
import { createReadStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { isArtifactVersion } from "@nbfleet/shared/artifact-signature";
import { Parser, type ReadEntry } from "tar";
import { ScriptsError } from "../errors.js";
import { AGENT_BUNDLE_FILE } from "./build.js";

/** The largest artifact (compressed) the controller accepts. */
export const ARTIFACT_MAX_BYTES = 64 * 1024 * 1024;
/** The most it may unpack to (a gzip bomb stops here). */
export const ARTIFACT_MAX_UNPACKED_BYTES = 512 * 1024 * 1024;
const MANIFEST_FILE = "manifest.json";
const MANIFEST_MAX_BYTES = 64 * 1024;
const MAX_ENTRIES = 20_000;

export interface InspectedArtifact {
  /** `manifest.json`'s version. */
  version: string;
  manifest: Record<string, unknown>;
  entries: number;
  unpackedBytes: number;
}

export interface InspectLimits {
  maxUnpackedBytes?: number;
}

const FILE_TYPES = new Set(["File", "OldFile", "ContiguousFile"]);

export async function inspectArtifact(file: string, limits: InspectLimits = {}): Promise<InspectedArtifact> {
  const maxUnpacked = limits.maxUnpackedBytes ?? ARTIFACT_MAX_UNPACKED_BYTES;
  const seen = new Set<string>();
  let refusal: ScriptsError | undefined;
  let manifestText: string | undefined;
  let unpackedBytes = 0;
  let entries = 0;

  const gunzip = createGunzip();
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      entries += 1;
      const problem = refusal ? undefined : entryProblem(entry, seen, entries);
      if (problem) refusal = invalid(problem);
      if (!refusal && normalize(entry.path) === MANIFEST_FILE) {
        const chunks: Buffer[] = [];
        let size = 0;
        entry.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size <= MANIFEST_MAX_BYTES) chunks.push(chunk);
        });
        entry.on("end", () => {
          if (size > MANIFEST_MAX_BYTES)
            refusal ??= invalid(`${MANIFEST_FILE} is larger than ${MANIFEST_MAX_BYTES} bytes`);
          else manifestText = Buffer.concat(chunks).toString("utf8");
        });
        return;
      }
      entry.resume();
    },
  });
  gunzip.on("data", (chunk: Buffer) => {
    unpackedBytes += chunk.length;
    if (unpackedBytes > maxUnpacked) {
      refusal ??= invalid(`it unpacks to more than ${maxUnpacked} bytes`);
      gunzip.destroy(refusal);
    }
  });
  let ended = false;
  parser.on("end", () => {
    ended = true;
  });

  try {
    await pipeline(createReadStream(file), gunzip, parser);
  } catch (error) {
    if (refusal) throw refusal;
    throw invalid(streamProblem(error));
  }
  if (refusal) throw refusal;
  if (!ended) throw invalid("the tar archive ended early (truncated)");
  if (entries === 0) throw invalid("the archive is empty");
  if (!seen.has(AGENT_BUNDLE_FILE))
    throw invalid(`it has no ${AGENT_BUNDLE_FILE} (the agent bundle) at its top`);
  if (manifestText === undefined) throw invalid(`it has no ${MANIFEST_FILE} at its top`);
  const manifest = manifestProblems(manifestText);
  return { version: manifest.version, manifest: manifest.value, entries, unpackedBytes };
}

function entryProblem(entry: ReadEntry, seen: Set<string>, count: number): string | undefined {
  if (count > MAX_ENTRIES) return `it has more than ${MAX_ENTRIES} entries`;
  const raw = entry.path;
  const shown = JSON.stringify(raw);
  if (raw === "" || raw.includes("\0")) return `an entry has an empty or NUL-bearing path (${shown})`;
  if (raw.startsWith("/") || raw.startsWith("\\") || /^[A-Za-z]:/.test(raw))
    return `entry ${shown} has an absolute path; entries must be relative to the artifact's top`;
  if (raw.split(/[\\/]+/).includes("..")) return `entry ${shown} climbs out of the artifact (a ".." part)`;
  if (entry.type === "SymbolicLink" || entry.type === "Link") {
    return `entry ${shown} is a ${entry.type === "Link" ? "hard" : "symbolic"} link (to ${JSON.stringify(
      entry.linkpath ?? "",
    )}); an artifact holds plain files and directories only`;
  }
  if (entry.type !== "Directory" && !FILE_TYPES.has(entry.type))
    return `entry ${shown} is a ${entry.type}; an artifact holds plain files and directories only`;
  if (entry.type === "Directory") return undefined;
  const name = normalize(raw);
  if (seen.has(name)) return `entry ${shown} appears twice (a later copy would replace the first)`;
  seen.add(name);
  return undefined;
}

function manifestProblems(text: string): { version: string; value: Record<string, unknown> } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw invalid(`${MANIFEST_FILE} is not JSON (${(error as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw invalid(`${MANIFEST_FILE} is not a JSON object`);
  const manifest = value as Record<string, unknown>;
  if (manifest.name !== "nbfleet-agent")
    throw invalid(`${MANIFEST_FILE} names ${JSON.stringify(manifest.name)}, not "nbfleet-agent"`);
  const version = manifest.version;
  if (typeof version !== "string" || !isArtifactVersion(version))
    throw invalid(
      `${MANIFEST_FILE} has version ${JSON.stringify(version)}, not MAJOR.MINOR.PATCH with an optional -prerelease or +build tail`,
    );
  if (manifest.entry !== undefined && manifest.entry !== AGENT_BUNDLE_FILE)
    throw invalid(
      `${MANIFEST_FILE} names entry ${JSON.stringify(manifest.entry)}, not "${AGENT_BUNDLE_FILE}"`,
    );
  return { version, value: manifest };
}

/** `./a//b/` → `a/b`. */
function normalize(entryPath: string): string {
  return entryPath
    .split("/")
    .filter((part) => part !== "" && part !== ".")
    .join("/");
}

function streamProblem(error: unknown): string {
  const e = error as { code?: string; message?: string };
  if (e.code === "Z_BUF_ERROR" || /unexpected end of file/i.test(e.message ?? ""))
    return "the gzip stream ended early (truncated)";
  if (e.code === "Z_DATA_ERROR") return `it is not a valid gzip stream (${e.message})`;
  if (typeof e.code === "string" && e.code.startsWith("TAR_"))
    return `it is not a valid tar archive (${e.message})`;
  return `it could not be read (${e.message ?? String(error)})`;
}

function invalid(problem: string): ScriptsError {
  return new ScriptsError("NBF_ARTIFACT_INVALID", problem, { problem });
}

/**
 * The close reason for an agent that speaks another protocol major: which agent to fetch so it
 * can talk to this controller (the newest published version, downloadable without a token: the
 * release key's signature vouches for it). A close reason holds 123 bytes: the version and its
 * path come first, the protocols spoken after.
 */
import { PROTOCOL_VERSION, agentArtifactFilePath } from "@nbfleet/shared";
import type { ArtifactCatalog } from "../artifacts/catalog.js";
import { clipReason } from "./socket-close.js";

export function protocolRefusalReason(agentProtocol: string, newestVersion: string | null): string {
  const spoken = `protocol ${agentProtocol} unsupported (controller speaks ${PROTOCOL_VERSION})`;
  if (newestVersion === null) return clipReason(`${spoken}; no agent artifact is published here`);
  const path = agentArtifactFilePath(newestVersion);
  const full = `fetch agent ${newestVersion} at ${path}: ${spoken}`;
  // A long version: its path (which names it) is what must get through.
  return Buffer.byteLength(full) <= 123 ? full : clipReason(`fetch ${path}: ${spoken}`);
}

/** The reason with the catalog's newest version; a catalog that fails to answer leaves it out. */
export async function refusalFromCatalog(
  agentProtocol: string,
  artifacts: Pick<ArtifactCatalog, "newest">,
): Promise<string> {
  const newest = await artifacts.newest().catch(() => null);
  return protocolRefusalReason(agentProtocol, newest?.version ?? null);
}

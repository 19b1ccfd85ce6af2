/**
 * A small real artifact catalog for controller tests that need versions without building
 * agents: each version is a file in a temp dir, its sha256 computed and signed with a fresh
 * release key, as the controller's store does (`apps/controller/src/artifacts/catalog.ts`).
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import type { ArtifactCatalog, ArtifactRecord } from "@nbfleet/controller";
import { compareVersions, generateReleaseKeyPair, signArtifact } from "@nbfleet/shared/artifact-signature";
import { makeDataDir } from "./data-dir.js";

export function signedCatalog(versions: string[]): ArtifactCatalog & { publicKeyPem: string } {
  const keys = generateReleaseKeyPair();
  const dir = makeDataDir("nbf-catalog-", 0o700);
  // `file`: where the bytes are (the catalog's interface may or may not name it).
  const records: Array<ArtifactRecord & { file: string }> = versions.map((version) => {
    const bytes = Buffer.from(`agent ${version}\n`);
    const file = path.join(dir, `${version}.tar.gz`);
    writeFileSync(file, bytes);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    return {
      version,
      sha256,
      bytes: bytes.length,
      signature: signArtifact(keys.privateKeyPem, version, sha256),
      publishedAt: new Date().toISOString(),
      file,
    };
  });
  records.sort((a, b) => compareVersions(b.version, a.version));
  return {
    publicKeyPem: keys.publicKeyPem,
    list: async () => [...records],
    get: async (version) => records.find((r) => r.version === version) ?? null,
    newest: async () => records[0] ?? null,
    releasePublicKeyPem: () => keys.publicKeyPem,
  };
}

import { describe, expect, it } from "vitest";
import {
  compareVersions,
  generateReleaseKeyPair,
  isArtifactVersion,
  releasePublicKeyPem,
  signArtifact,
  verifyArtifact,
} from "./artifact-signature.js";

const sha = "a".repeat(64);
const other = "b".repeat(64);

describe("artifact signatures", () => {
  const keys = generateReleaseKeyPair();

  it("verifies its own signature, and only for the same version and sha256", () => {
    const signature = signArtifact(keys.privateKeyPem, "1.2.3", sha);
    expect(verifyArtifact(keys.publicKeyPem, "1.2.3", sha, signature)).toBe(true);
    expect(verifyArtifact(keys.publicKeyPem, "1.2.4", sha, signature)).toBe(false);
    expect(verifyArtifact(keys.publicKeyPem, "1.2.3", other, signature)).toBe(false);
  });

  it("refuses another key's signature, and garbage of every kind without throwing", () => {
    const stranger = generateReleaseKeyPair();
    const signature = signArtifact(stranger.privateKeyPem, "1.2.3", sha);
    expect(verifyArtifact(keys.publicKeyPem, "1.2.3", sha, signature)).toBe(false);
    expect(verifyArtifact(keys.publicKeyPem, "1.2.3", sha, "")).toBe(false);
    expect(verifyArtifact(keys.publicKeyPem, "1.2.3", sha, "%%%")).toBe(false);
    expect(verifyArtifact("not a key", "1.2.3", sha, signature)).toBe(false);
    expect(verifyArtifact(keys.publicKeyPem, "../etc", sha, signature)).toBe(false);
    expect(verifyArtifact(keys.publicKeyPem, "1.2.3", "A".repeat(64), signature)).toBe(false);
  });

  it("derives the public key from the private key", () => {
    expect(releasePublicKeyPem(keys.privateKeyPem)).toBe(keys.publicKeyPem);
  });

  it("checks version strings", () => {
    for (const good of ["0.1.0", "1.0.0-rc.1", "2.3.4+build.7", "10.20.30"])
      expect(isArtifactVersion(good)).toBe(true);
    for (const bad of ["", "1.0", "v1.0.0", "1.0.0/..", "1.0.0 ", "../../x", "1.0.0-"])
      expect(isArtifactVersion(bad)).toBe(false);
  });

  it("orders versions by semver precedence", () => {
    const sorted = ["1.0.0", "0.9.0", "1.0.0-rc.2", "1.0.0-rc.10", "1.0.0-alpha", "0.10.0", "1.0.1"].sort(
      compareVersions,
    );
    expect(sorted).toEqual(["0.9.0", "0.10.0", "1.0.0-alpha", "1.0.0-rc.2", "1.0.0-rc.10", "1.0.0", "1.0.1"]);
    expect(compareVersions("1.0.0+a", "1.0.0+b")).toBe(-1);
    expect(compareVersions("1.0.0", "1.0.0")).toBe(0);
  });
});

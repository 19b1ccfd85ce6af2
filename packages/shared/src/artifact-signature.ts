/**
 * Agent artifacts as versions, signed with the controller's release key (Ed25519). The
 * signature covers the version and the tarball's SHA-256 together, so a signature made for one
 * version can never vouch for another version's bytes. The controller signs when it publishes an
 * artifact; the agent verifies with the public key its bootstrap carried before it unpacks or
 * switches anything.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from "node:crypto";

/** `MAJOR.MINOR.PATCH` with an optional `-prerelease` or `+build` tail (what `--version` takes). */
export const ARTIFACT_VERSION_PATTERN = "^[0-9]{1,9}\\.[0-9]{1,9}\\.[0-9]{1,9}([-+][0-9A-Za-z.-]{1,40})?$";
const VERSION = new RegExp(ARTIFACT_VERSION_PATTERN);
const SHA256 = /^[0-9a-f]{64}$/;

export function isArtifactVersion(value: string): boolean {
  return VERSION.test(value);
}

/** The exact bytes the release key signs for one artifact. */
export function artifactSigningMessage(version: string, sha256: string): Buffer {
  if (!isArtifactVersion(version)) throw new Error(`not an artifact version: ${JSON.stringify(version)}`);
  if (!SHA256.test(sha256)) throw new Error(`not a lower-case hex SHA-256: ${JSON.stringify(sha256)}`);
  return Buffer.from(`nbfleet-agent-artifact\nversion ${version}\nsha256 ${sha256}\n`, "utf8");
}

/** A new release key pair as PEM (PKCS#8 private, SPKI public). */
export function generateReleaseKeyPair(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

/** The public key (SPKI PEM) of a release private key (PKCS#8 PEM). */
export function releasePublicKeyPem(privateKeyPem: string): string {
  return createPublicKey(createPrivateKey(privateKeyPem)).export({ type: "spki", format: "pem" }).toString();
}

/** Base64 Ed25519 signature of `artifactSigningMessage(version, sha256)`. */
export function signArtifact(privateKeyPem: string, version: string, sha256: string): string {
  const key = createPrivateKey(privateKeyPem);
  if (key.asymmetricKeyType !== "ed25519") throw new Error("the release key is not an Ed25519 key");
  return sign(null, artifactSigningMessage(version, sha256), key).toString("base64");
}

/**
 * True only when `signature` is the release key's signature of this version and SHA-256.
 * Anything malformed (key, version, hash, base64) is a failed verification, never a throw.
 */
export function verifyArtifact(
  publicKeyPem: string,
  version: string,
  sha256: string,
  signature: string,
): boolean {
  try {
    const key = createPublicKey(publicKeyPem);
    if (key.asymmetricKeyType !== "ed25519") return false;
    if (!/^[A-Za-z0-9+/]{86}==$/.test(signature)) return false;
    return verify(null, artifactSigningMessage(version, sha256), key, Buffer.from(signature, "base64"));
  } catch {
    return false;
  }
}

/**
 * Orders artifact versions by semver precedence: numbers first; a pre-release is older than its
 * release; pre-release parts compare numerically when both are numbers, else as text; `+build`
 * tails are compared last, as text, so two distinct versions never compare equal.
 */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [core = "", build = ""] = v.split("+", 2);
    const dash = core.indexOf("-");
    const main = (dash < 0 ? core : core.slice(0, dash)).split(".").map(Number);
    return { main, pre: dash < 0 ? null : core.slice(dash + 1).split("."), build };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i += 1) {
    const d = (x.main[i] ?? 0) - (y.main[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  if (x.pre === null || y.pre === null) {
    if (x.pre !== y.pre) return x.pre === null ? 1 : -1;
  } else {
    for (let i = 0; i < Math.max(x.pre.length, y.pre.length); i += 1) {
      const p = x.pre[i];
      const q = y.pre[i];
      if (p === undefined || q === undefined) return p === undefined ? -1 : 1;
      if (p === q) continue;
      const numeric = /^\d+$/.test(p) && /^\d+$/.test(q);
      return numeric ? Math.sign(Number(p) - Number(q)) : p < q ? -1 : 1;
    }
  }
  return x.build === y.build ? 0 : x.build < y.build ? -1 : 1;
}

/**
 * The controller's release key: an Ed25519 key (PKCS#8 PEM) in `<data-dir>/release-key.pem` (or
 * the file `releaseKeyFile` names), mode 0600, made once at the first start and read at every
 * later one. One key per cluster: every replica needs a copy of the same file (cluster-key.ts). It signs every agent
 * artifact the controller stores; guests get its public key in their bootstrap and refuse an
 * upgrade artifact it did not sign. The private key is never logged, never put in an
 * environment variable or a command line, and never leaves this file and this process.
 */
import { createPrivateKey, randomBytes } from "node:crypto";
import { chmod, link, lstat, readFile, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { generateReleaseKeyPair, releasePublicKeyPem } from "@nbfleet/shared/artifact-signature";
import { NbfError } from "../errors.js";

export const RELEASE_KEY_FILE = "release-key.pem";

export interface ReleaseKey {
  file: string;
  privateKeyPem: string;
  /** SPKI PEM: what guests verify artifact signatures with. */
  publicKeyPem: string;
  /** True when this call made the key. */
  created: boolean;
}

/** The key file a controller with these settings uses. */
export function releaseKeyPath(settings: { dataDir: string; releaseKeyFile?: string | null }): string {
  return path.resolve(settings.releaseKeyFile ?? path.join(settings.dataDir, RELEASE_KEY_FILE));
}

/** The key in `<dataDir>/release-key.pem`, made when missing. */
export function ensureReleaseKey(dataDir: string): Promise<ReleaseKey> {
  return ensureReleaseKeyFile(path.join(dataDir, RELEASE_KEY_FILE));
}

/** The key in `file`, made (0600) when missing; its directory must exist. */
export async function ensureReleaseKeyFile(file: string): Promise<ReleaseKey> {
  const existing = await readKey(file);
  if (existing) return { ...existing, created: false };
  const pair = generateReleaseKeyPair();
  // Written whole under another name, then linked into place: a second process starting on the
  // same data dir (replicas) either links first or reads the key that did.
  const temp = `${file}.${randomBytes(8).toString("hex")}.tmp`;
  try {
    await writeFile(temp, pair.privateKeyPem, { mode: 0o600, flag: "wx" });
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw invalid(
      file,
      `cannot be made: ${e.code === "ENOENT" ? "its directory does not exist" : e.message}`,
    );
  }
  try {
    await chmod(temp, 0o600);
    await link(temp, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    const winner = await readKey(file);
    if (!winner) throw error;
    return { ...winner, created: false };
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  return { file, privateKeyPem: pair.privateKeyPem, publicKeyPem: pair.publicKeyPem, created: true };
}

async function readKey(file: string): Promise<Omit<ReleaseKey, "created"> | undefined> {
  let stats: Awaited<ReturnType<typeof lstat>>;
  try {
    stats = await lstat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  if (!stats.isFile()) throw invalid(file, "it is not a regular file (a link or a directory)");
  if ((stats.mode & 0o077) !== 0) {
    throw invalid(
      file,
      `its mode ${(stats.mode & 0o777).toString(8)} lets other users read it; chmod 600 it (if it may have been read, move it away: a new key is made, and guests need a new bootstrap to trust it)`,
    );
  }
  const privateKeyPem = await readFile(file, "utf8");
  try {
    const key = createPrivateKey(privateKeyPem);
    if (key.asymmetricKeyType !== "ed25519") {
      throw new Error(`it is an ${key.asymmetricKeyType} key, not Ed25519`);
    }
  } catch (error) {
    throw invalid(file, `it is not an Ed25519 private key in PEM: ${(error as Error).message}`);
  }
  return { file, privateKeyPem, publicKeyPem: releasePublicKeyPem(privateKeyPem) };
}

function invalid(file: string, problem: string): NbfError {
  return new NbfError("NBF_CONFIG_INVALID", { source: file, problems: `the release key ${problem}` });
}

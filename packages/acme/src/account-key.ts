/**
 * The ACME account's private key: made once (ECDSA P-256) and kept 0600 in the caller's state
 * directory, so every later order is placed by the same account (RFC 8555 finds the account by
 * its key). A key file whose mode drifted is put back to 0600; an unreadable one is an error
 * naming the file, never silently replaced (that would orphan the account). A new key appears
 * under its name whole or not at all: a full disk or a crash while writing it leaves nothing
 * there, and the next call makes one.
 */
import { createPrivateKey, generateKeyPairSync, randomBytes } from "node:crypto";
import nodeFs from "node:fs/promises";
import path from "node:path";
import { AcmeError } from "./error.js";

const KEY_MODE = 0o600;

/** The filesystem the key is kept on; tests pass one whose writes fail. */
export type AccountKeyFs = typeof nodeFs;

export async function loadOrCreateAccountKey(file: string, fs: AccountKeyFs = nodeFs): Promise<string> {
  const existing = await readTextIfPresent(fs, file);
  if (existing !== null) {
    try {
      createPrivateKey(existing);
    } catch (error) {
      throw new AcmeError(
        `the ACME account key ${file} cannot be read as a PEM private key (${(error as Error).message}); restore it, or remove it to register a new account`,
        { file },
      );
    }
    if (((await fs.stat(file)).mode & 0o777) !== KEY_MODE) await fs.chmod(file, KEY_MODE);
    return existing;
  }
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const pem = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
  await fs.mkdir(path.dirname(file), { recursive: true });
  if (!(await publishNew(fs, file, pem))) return loadOrCreateAccountKey(file, fs);
  return pem;
}

/**
 * Writes the key beside its name, then links it there: false when another caller's key got there
 * first (two agents racing for the first key must not each keep a different one).
 */
async function publishNew(fs: AccountKeyFs, file: string, pem: string): Promise<boolean> {
  const temp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    const handle = await fs.open(temp, "wx", KEY_MODE);
    try {
      await handle.writeFile(pem);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.link(temp, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  } finally {
    await fs.rm(temp, { force: true });
  }
}

async function readTextIfPresent(fs: AccountKeyFs, file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

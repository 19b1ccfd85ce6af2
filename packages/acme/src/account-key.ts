/**
 * The ACME account's private key: made once (ECDSA P-256) and kept 0600 in the caller's state
 * directory, so every later order is placed by the same account (RFC 8555 finds the account by
 * its key). A key file whose mode drifted is put back to 0600; an unreadable one is an error
 * naming the file, never silently replaced (that would orphan the account).
 */
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { AcmeError } from "./error.js";

const KEY_MODE = 0o600;

export async function loadOrCreateAccountKey(file: string): Promise<string> {
  const existing = await readTextIfPresent(file);
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
  try {
    // "wx": two agents racing for the first key must not each keep a different one.
    await fs.writeFile(file, pem, { mode: KEY_MODE, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return loadOrCreateAccountKey(file);
    throw error;
  }
  return pem;
}

async function readTextIfPresent(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

/**
 * Notebook password hashes in Jupyter's own formats, so the server's `passwd_check` accepts
 * them: `argon2:$argon2id$v=19$m=10240,t=10,p=8$…` (the parameters notebook's `passwd()` uses)
 * and the legacy `sha1:<salt>:<hex>` for servers too old for argon2. Plaintext is only ever
 * held in memory; no error message carries it.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { JupyterGeneration } from "@nbfleet/shared";
import type { Algorithm } from "@node-rs/argon2";
import { AgentError } from "../errors.js";

export const MAX_PASSWORD_LENGTH = 1024;

// Algorithm is an ambient const enum, which isolatedModules cannot read; 2 is Argon2id.
const ARGON2ID = 2 as Algorithm;
const ARGON2_OPTIONS = { algorithm: ARGON2ID, memoryCost: 10240, timeCost: 10, parallelism: 8 };
const SHA1_SALT_BYTES = 6;

type Argon2 = typeof import("@node-rs/argon2");
let argon2: Promise<Argon2> | undefined;

/**
 * Loaded on first use: the native module is prebuilt per platform and only hashing or checking
 * a plaintext needs it, so an agent artifact without it still runs with ready hashes.
 */
function loadArgon2(): Promise<Argon2> {
  argon2 ??= import("@node-rs/argon2").catch((error: unknown) => {
    argon2 = undefined;
    const platform = `${process.platform}-${process.arch}`;
    throw new AgentError(
      "NBF_ARGON2_UNAVAILABLE",
      `the native argon2 module (@node-rs/argon2) cannot be loaded on ${platform}: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}; give a ready hash instead (--password-hash) or install @node-rs/argon2 next to the agent`,
      { platform },
    );
  });
  return argon2;
}

const ARGON2_HASH = /^argon2:\$argon2(id|i)\$(v=\d+\$)?m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/;
const SHA1_HASH = /^sha1:([0-9a-fA-F]{1,64}):([0-9a-f]{40})$/;
const EXPECTED_FORMATS = "argon2:$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash> or sha1:<hex salt>:<40 hex digits>";

export type PasswordAlgorithm = "argon2" | "sha1";

function checkPlain(plain: string): void {
  if (plain.length === 0) {
    throw new AgentError("NBF_PASSWORD_INVALID", "the password is empty", { length: 0 });
  }
  if (plain.length > MAX_PASSWORD_LENGTH) {
    throw new AgentError(
      "NBF_PASSWORD_INVALID",
      `the password is ${plain.length} characters long; at most ${MAX_PASSWORD_LENGTH} are accepted`,
      { length: plain.length },
    );
  }
}

export async function hashPassword(plain: string): Promise<string> {
  checkPlain(plain);
  const { hash } = await loadArgon2();
  return `argon2:${await hash(plain, ARGON2_OPTIONS)}`;
}

/** What notebook's `passwd(p, algorithm="sha1")` makes: sha1 over passphrase + salt. */
export function hashPasswordSha1(plain: string): string {
  checkPlain(plain);
  const salt = randomBytes(SHA1_SALT_BYTES).toString("hex");
  return `sha1:${salt}:${sha1Hex(plain, salt)}`;
}

/** argon2 from notebook 6.1 and jupyter_server 1.5 on; older servers only know sha1. */
export function passwordAlgorithmFor(server: {
  generation: JupyterGeneration;
  version: string;
}): PasswordAlgorithm {
  const minimum = server.generation === "notebook6" ? [6, 1] : [1, 5];
  const parts = server.version.match(/^\s*v?(\d+)(?:\.(\d+))?/);
  if (!parts) {
    throw new AgentError("NBF_INVALID_INPUT", `not a Jupyter version: ${JSON.stringify(server.version)}`, {
      version: server.version,
    });
  }
  const major = Number(parts[1]);
  const minor = Number(parts[2] ?? 0);
  const [minMajor, minMinor] = minimum as [number, number];
  return major > minMajor || (major === minMajor && minor >= minMinor) ? "argon2" : "sha1";
}

export async function hashForServer(
  plain: string,
  server: { generation: JupyterGeneration; version: string },
): Promise<string> {
  return passwordAlgorithmFor(server) === "argon2" ? hashPassword(plain) : hashPasswordSha1(plain);
}

/** Returns the hash's algorithm, or throws NBF_PASSWORD_INVALID naming the accepted formats. */
export function validateHash(hash: string): PasswordAlgorithm {
  if (ARGON2_HASH.test(hash)) return "argon2";
  if (SHA1_HASH.test(hash)) return "sha1";
  throw new AgentError(
    "NBF_PASSWORD_INVALID",
    `not a Jupyter password hash (starts ${JSON.stringify(hash.slice(0, 12))}, ${hash.length} characters); expected ${EXPECTED_FORMATS}`,
    { prefix: hash.slice(0, 12), length: hash.length },
  );
}

export async function verifyPassword(plain: string, hash: string): Promise<boolean> {
  if (validateHash(hash) === "argon2") {
    const { verify } = await loadArgon2();
    return verify(hash.slice("argon2:".length), plain);
  }
  const [, salt, digest] = SHA1_HASH.exec(hash)!;
  return timingSafeEqual(Buffer.from(sha1Hex(plain, salt!)), Buffer.from(digest!));
}

function sha1Hex(plain: string, salt: string): string {
  return createHash("sha1")
    .update(Buffer.concat([Buffer.from(plain, "utf8"), Buffer.from(salt, "ascii")]))
    .digest("hex");
}

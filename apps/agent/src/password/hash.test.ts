import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import {
  hashForServer,
  hashPassword,
  hashPasswordSha1,
  passwordAlgorithmFor,
  validateHash,
  verifyPassword,
} from "./hash.js";

const run = promisify(execFile);

/** Jupyter's own check, in Debian's Python; hash and password travel by environment, never argv. */
async function jupyterAccepts(hash: string, password: string): Promise<boolean> {
  const script =
    "import os; from notebook.auth.security import passwd_check; print(passwd_check(os.environ['HASH'], os.environ['PASSWORD']))";
  const { stdout } = await run("/usr/bin/python3", ["-c", script], {
    env: { HASH: hash, PASSWORD: password },
  });
  if (stdout.trim() !== "True" && stdout.trim() !== "False") throw new Error(`unexpected output: ${stdout}`);
  return stdout.trim() === "True";
}

async function jupyterHash(password: string, algorithm: "sha1" | "argon2"): Promise<string> {
  const script =
    "import os; from notebook.auth.security import passwd; print(passwd(os.environ['PASSWORD'], algorithm=os.environ['ALGORITHM']))";
  const { stdout } = await run("/usr/bin/python3", ["-c", script], {
    env: { PASSWORD: password, ALGORITHM: algorithm },
  });
  return stdout.trim();
}

const PASSWORD = "correct horse – battery staple ✓";

describe("hashPassword", () => {
  it("makes an argon2id hash that Jupyter's passwd_check accepts, and only for the right password", async () => {
    const hash = await hashPassword(PASSWORD);
    expect(hash).toMatch(/^argon2:\$argon2id\$v=19\$m=10240,t=10,p=8\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    expect(await jupyterAccepts(hash, PASSWORD)).toBe(true);
    expect(await jupyterAccepts(hash, `${PASSWORD} `)).toBe(false);
    expect(await verifyPassword(PASSWORD, hash)).toBe(true);
    expect(await verifyPassword("wrong", hash)).toBe(false);
  });

  it("refuses an empty or overlong password without echoing it", async () => {
    await expect(hashPassword("")).rejects.toThrow("the password is empty");
    const long = "x".repeat(1025);
    await expect(hashPassword(long)).rejects.toThrow(
      "the password is 1025 characters long; at most 1024 are accepted",
    );
    expect(() => hashPasswordSha1("")).toThrow(/NBF|empty/);
    expect(await hashPassword("y".repeat(1024))).toMatch(/^argon2:/);
  });
});

describe("hashPasswordSha1", () => {
  it("makes notebook's legacy sha1 format, accepted by Jupyter's passwd_check", async () => {
    const hash = hashPasswordSha1(PASSWORD);
    expect(hash).toMatch(/^sha1:[0-9a-f]{12}:[0-9a-f]{40}$/);
    expect(await jupyterAccepts(hash, PASSWORD)).toBe(true);
    expect(await jupyterAccepts(hash, "wrong")).toBe(false);
    expect(hashPasswordSha1(PASSWORD)).not.toBe(hash);
  });
});

describe("hashes made by Jupyter itself", () => {
  it("are accepted by validateHash and verifyPassword", async () => {
    for (const algorithm of ["sha1", "argon2"] as const) {
      const hash = await jupyterHash(PASSWORD, algorithm);
      expect(validateHash(hash)).toBe(algorithm);
      expect(await verifyPassword(PASSWORD, hash)).toBe(true);
      expect(await verifyPassword("wrong", hash)).toBe(false);
    }
  });
});

describe("validateHash", () => {
  it("accepts well-formed argon2id, argon2i and sha1 hashes", () => {
    expect(
      validateHash("argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"),
    ).toBe("argon2");
    expect(validateHash("argon2:$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaA")).toBe("argon2");
    expect(validateHash("sha1:0e112c3ddfce:a68df677475c2b47b6e86d0467eec97ac5f4b85a")).toBe("sha1");
  });

  it("refuses anything else, naming the expected formats", () => {
    for (const bad of [
      "",
      "plaintext",
      "$argon2id$v=19$m=10240,t=10,p=8$c2FsdA$aGFzaA",
      "argon2:$argon2d$v=19$m=10240,t=10,p=8$c2FsdA$aGFzaA",
      "argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdA",
      "sha1:0e112c3ddfce:a68df677",
      "sha1:0e112c3ddfce:A68DF677475C2B47B6E86D0467EEC97AC5F4B85A",
      "sha256:0e112c3ddfce:a68df677475c2b47b6e86d0467eec97ac5f4b85a",
    ]) {
      expect(() => validateHash(bad), bad).toThrow(
        /expected argon2:\$argon2id\$.* or sha1:<hex salt>:<40 hex digits>/,
      );
    }
  });
});

describe("hashForServer", () => {
  it("uses argon2 from notebook 6.1 and jupyter_server 1.5 on, sha1 before", async () => {
    expect(passwordAlgorithmFor({ generation: "notebook6", version: "6.4.12" })).toBe("argon2");
    expect(passwordAlgorithmFor({ generation: "notebook6", version: "6.1.0" })).toBe("argon2");
    expect(passwordAlgorithmFor({ generation: "notebook6", version: "6.0.3" })).toBe("sha1");
    expect(passwordAlgorithmFor({ generation: "notebook6", version: "5.7.8" })).toBe("sha1");
    expect(passwordAlgorithmFor({ generation: "server2", version: "2.14.2" })).toBe("argon2");
    expect(passwordAlgorithmFor({ generation: "server2", version: "1.4.1" })).toBe("sha1");
    expect(() => passwordAlgorithmFor({ generation: "server2", version: "unknown" })).toThrow(
      /not a Jupyter version/,
    );

    expect(await hashForServer("pw", { generation: "notebook6", version: "6.4.12" })).toMatch(
      /^argon2:\$argon2id\$/,
    );
    expect(await hashForServer("pw", { generation: "notebook6", version: "5.7.8" })).toMatch(/^sha1:/);
  });
});

/**
 * The notebook's user made for real (root, Debian's useradd): several agents asking for the
 * same missing user at once — as when several sandboxes boot together — get one user whose
 * home is its own. Without the users lock, concurrent useradd runs leave the home owned by a
 * uid that is not the user's.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rm, stat } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { resolveRunAs } from "../../src/profile/user.js";

const made: string[] = [];

afterEach(async () => {
  for (const user of made.splice(0)) {
    try {
      execFileSync("userdel", [user], { stdio: "ignore" });
    } catch {
      // not created
    }
    // Not `userdel --remove`: it keeps a home that a race left owned by another uid.
    await rm(`/home/${user}`, { recursive: true, force: true });
  }
});

describe("resolveRunAs against the real user database", () => {
  it("creates one user with its own home when agents ask at the same time", async () => {
    expect(process.getuid?.(), "this test creates users: run it as root").toBe(0);
    for (let round = 0; round < 3; round++) {
      const name = `nbft-${randomBytes(4).toString("hex")}`;
      made.push(name);
      const resolved = await Promise.all(
        Array.from({ length: 5 }, () => resolveRunAs({ isRoot: true, runAs: name, allowRoot: false })),
      );
      const uids = new Set(resolved.map((user) => user?.uid));
      expect(uids.size).toBe(1);
      const user = resolved[0]!;
      const home = await stat(user.home);
      expect({ round, uid: home.uid, gid: home.gid }).toEqual({ round, uid: user.uid, gid: user.gid });
      const entries = execFileSync("getent", ["passwd", name], { encoding: "utf8" }).trim().split("\n");
      expect(entries).toHaveLength(1);
    }
  });
});

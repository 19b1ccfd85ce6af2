/**
 * Sandbox users made for real (root, Debian's useradd/userdel): several machines created at once
 * get distinct users; a user of the same name that nbfleet did not make is refused and never
 * deleted; deleting ends the user's processes first.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import {
  ensureSandboxUser,
  removeSandboxUser,
  sandboxUserName,
} from "../../src/providers/local/sandbox-user.js";

const root = `/nonexistent/nbf-test-${randomBytes(4).toString("hex")}`;
const created: string[] = [];

function passwd(name: string): string[] | null {
  try {
    return execFileSync("getent", ["passwd", name], { encoding: "utf8" }).trim().split(":");
  } catch {
    return null;
  }
}

afterEach(() => {
  for (const name of created.splice(0)) {
    if (passwd(name)) execFileSync("userdel", [name]);
  }
});

describe("sandbox users", () => {
  it("gives machines created at once their own users, reused on a second ask", async () => {
    expect(process.getuid?.(), "this test creates users: run it as root").toBe(0);
    const vms = ["iso-a", "iso-b", "iso-c", "iso-d"];
    created.push(...vms.map((vm) => sandboxUserName(root, vm)));
    const users = await Promise.all(vms.map((vm) => ensureSandboxUser(root, vm, `${root}/${vm}/home`)));
    expect(new Set(users.map((u) => u.uid)).size).toBe(4);
    for (const [i, user] of users.entries()) {
      const entry = passwd(user.user)!;
      expect(entry[4]).toBe(`nbfleet sandbox ${vms[i]}`);
      expect(entry[5]).toBe(`${root}/${vms[i]}/home`);
      expect(Number(entry[2])).toBe(user.uid);
      expect(user.uid).not.toBe(0);
    }
    const again = await ensureSandboxUser(root, "iso-a", `${root}/iso-a/home`);
    expect(again.uid).toBe(users[0]!.uid);
  });

  it("refuses and keeps a same-named user that nbfleet did not make", async () => {
    const name = sandboxUserName(root, "foreign");
    created.push(name);
    execFileSync("useradd", ["--system", "--no-create-home", "--comment", "someone else", name]);
    await expect(ensureSandboxUser(root, "foreign", `${root}/foreign/home`)).rejects.toThrow(
      /exists that nbfleet did not make/,
    );
    await removeSandboxUser(root, "foreign");
    expect(passwd(name)).not.toBeNull();
  });

  it("ends the user's processes, then deletes it", async () => {
    const user = await ensureSandboxUser(root, "iso-del", `${root}/iso-del/home`);
    created.push(user.user);
    const child = spawn(
      "setpriv",
      [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups", "sleep", "300"],
      {
        stdio: "ignore",
      },
    );
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.once("exit", (_code, signal) => resolve(signal)),
    );
    await sleep(300);
    expect(child.exitCode).toBeNull();
    await removeSandboxUser(root, "iso-del");
    expect(await exited).toBe("SIGKILL");
    expect(passwd(user.user)).toBeNull();
  });
});

import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { rejectionOf } from "@nbfleet/testkit/rejection";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentError } from "../errors.js";
import type { CommandResult, CommandRunner } from "../install/command-runner.js";
import {
  USERS_LOCK_FILE,
  assertTraversable,
  ensureTraversable,
  parsePasswdLine,
  resolveRunAs,
} from "./user.js";

function fakeRunner(answers: Record<string, CommandResult>) {
  const calls: string[] = [];
  const runner: CommandRunner = async (argv) => {
    const line = argv.join(" ");
    calls.push(line);
    const answer = Object.entries(answers).find(([prefix]) => line.startsWith(prefix));
    return answer ? answer[1] : { code: 127, stdout: "", stderr: `${argv[0]}: not found` };
  };
  return { runner, calls };
}

const ok = (stdout = ""): CommandResult => ({ code: 0, stdout, stderr: "" });
const fail = (code: number, stderr: string): CommandResult => ({ code, stdout: "", stderr });
const NBFLEET_PASSWD = "nbfleet:x:998:998::/home/nbfleet:/usr/sbin/nologin\n";

const rejection = (promise: Promise<unknown>) => rejectionOf(promise, AgentError);

describe("parsePasswdLine", () => {
  it("reads name, uid, gid and home", () => {
    expect(parsePasswdLine(NBFLEET_PASSWD)).toEqual({
      user: "nbfleet",
      uid: 998,
      gid: 998,
      home: "/home/nbfleet",
    });
    expect(parsePasswdLine("garbage")).toBeNull();
    expect(parsePasswdLine("a:x:one:2::/h:/bin/sh")).toBeNull();
  });
});

describe("resolveRunAs", () => {
  it("runs as the agent's own user when the agent is not root", async () => {
    const { runner, calls } = fakeRunner({});
    expect(await resolveRunAs({ isRoot: false, runAs: "nbfleet", allowRoot: false, runner })).toBeNull();
    expect(calls).toEqual([]);
  });

  it("uses an existing user without creating it", async () => {
    const { runner, calls } = fakeRunner({
      "id -u nbfleet": ok("998\n"),
      "getent passwd nbfleet": ok(NBFLEET_PASSWD),
    });
    expect(await resolveRunAs({ isRoot: true, runAs: "nbfleet", allowRoot: false, runner })).toEqual({
      user: "nbfleet",
      uid: 998,
      gid: 998,
      home: "/home/nbfleet",
    });
    expect(calls).toEqual(["id -u nbfleet", "getent passwd nbfleet"]);
  });

  it("creates a missing user as a system user with a home and no login shell, holding the users lock", async () => {
    const { runner, calls } = fakeRunner({
      "id -u nbfleet": fail(1, "id: 'nbfleet': no such user"),
      flock: ok(),
      "getent passwd nbfleet": ok(NBFLEET_PASSWD),
    });
    expect((await resolveRunAs({ isRoot: true, runAs: "nbfleet", allowRoot: false, runner }))?.uid).toBe(998);
    expect(calls[1]).toBe(
      `flock --wait 60 ${USERS_LOCK_FILE} useradd --system --create-home --shell /usr/sbin/nologin nbfleet`,
    );
    expect(calls).toHaveLength(3);
  });

  it("takes a user another agent created meanwhile (useradd exit 9)", async () => {
    const { runner } = fakeRunner({
      "id -u nbfleet": fail(1, "no such user"),
      flock: fail(9, "useradd: user 'nbfleet' already exists"),
      "getent passwd nbfleet": ok(NBFLEET_PASSWD),
    });
    expect((await resolveRunAs({ isRoot: true, runAs: "nbfleet", allowRoot: false, runner }))?.uid).toBe(998);
  });

  it("runs useradd bare on a host without flock", async () => {
    const { runner, calls } = fakeRunner({
      "id -u nbfleet": fail(1, "no such user"),
      useradd: ok(),
      "getent passwd nbfleet": ok(NBFLEET_PASSWD),
    });
    expect((await resolveRunAs({ isRoot: true, runAs: "nbfleet", allowRoot: false, runner }))?.uid).toBe(998);
    expect(calls.slice(1, 3)).toEqual([
      `flock --wait 60 ${USERS_LOCK_FILE} useradd --system --create-home --shell /usr/sbin/nologin nbfleet`,
      "useradd --system --create-home --shell /usr/sbin/nologin nbfleet",
    ]);
  });

  it("names the failed command when the user cannot be created", async () => {
    const { runner } = fakeRunner({
      "id -u nbfleet": fail(1, "no such user"),
      flock: fail(1, "useradd: cannot lock /etc/passwd; try again later."),
    });
    const error = await rejection(resolveRunAs({ isRoot: true, runAs: "nbfleet", allowRoot: false, runner }));
    expect(error.code).toBe("NBF_USER_SETUP_FAILED");
    expect(error.message).toContain("useradd --system --create-home --shell /usr/sbin/nologin nbfleet");
    expect(error.message).toContain("cannot lock /etc/passwd");
  });

  it("refuses root unless allowed, also when the name maps to uid 0", async () => {
    const root = await rejection(resolveRunAs({ isRoot: true, runAs: "root", allowRoot: false }));
    expect(root.code).toBe("NBF_RUN_AS_ROOT_REFUSED");
    expect(await resolveRunAs({ isRoot: true, runAs: "root", allowRoot: true })).toBeNull();
    const { runner } = fakeRunner({
      "id -u toor": ok("0\n"),
      "getent passwd toor": ok("toor:x:0:0::/root:/bin/sh\n"),
    });
    const alias = await rejection(resolveRunAs({ isRoot: true, runAs: "toor", allowRoot: false, runner }));
    expect(alias.code).toBe("NBF_RUN_AS_ROOT_REFUSED");
  });

  it("refuses a user name that is not a plain user name", async () => {
    const error = await rejection(resolveRunAs({ isRoot: true, runAs: "-o;rm", allowRoot: false }));
    expect(error.code).toBe("NBF_INVALID_INPUT");
  });
});

describe("ensureTraversable", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "nbf-trav-"));
    await chmod(dir, 0o755);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("returns the first directory others cannot search", async () => {
    const closed = path.join(dir, "closed");
    const data = path.join(closed, "open", "data");
    await mkdir(data, { recursive: true, mode: 0o755 });
    expect(await ensureTraversable(data)).toBeNull();
    await chmod(closed, 0o750);
    expect(await ensureTraversable(data)).toBe(closed);
    expect(await ensureTraversable(path.join(data, "not-yet-created"))).toBe(closed);
  });

  it("checks the owner and group bits for a given user, and lets root through", async () => {
    const data = path.join(dir, "data");
    await mkdir(data, { mode: 0o700 });
    const me = { uid: process.getuid!(), gid: process.getgid!() };
    expect(await ensureTraversable(data, me)).toBeNull();
    expect(await ensureTraversable(data, { uid: 54321, gid: 54321 })).toBe(data);
    expect(await ensureTraversable(data, { uid: 54321, gid: me.gid })).toBe(data);
    await chmod(data, 0o710);
    expect(await ensureTraversable(data, { uid: 54321, gid: me.gid })).toBeNull();
    expect(await ensureTraversable(data, { uid: 0, gid: 0 })).toBeNull();
  });

  it("assertTraversable names the blocking directory and how to fix it", async () => {
    const data = path.join(dir, "private", "data");
    await mkdir(data, { recursive: true });
    await chmod(path.dirname(data), 0o700);
    const error = await rejection(
      assertTraversable(data, { user: "nbfleet", uid: 54321, gid: 54321, home: "/home/nbfleet" }),
    );
    expect(error.code).toBe("NBF_USER_SETUP_FAILED");
    expect(error.message).toContain(`${path.dirname(data)} (mode 0700) is not searchable`);
    expect(error.message).toContain(`chmod o+x ${path.dirname(data)}`);
  });
});

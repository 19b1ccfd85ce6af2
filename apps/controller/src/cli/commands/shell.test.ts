/**
 * `nbfleet exec`, `nbfleet shell` and `nbfleet logs` as processes, against a real controller and
 * a real agent link (real node-pty on the agent side). `shell` runs inside a real pseudo-terminal
 * of its own, so raw mode, window resizes and restoring the terminal are the real thing.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { loadNodePty } from "@nbfleet/agent";
import { shellQuote } from "@nbfleet/shared/quote";
import { digestOf, digestOfFile } from "@nbfleet/testkit/digest";
import { bundledCli } from "@nbfleet/testkit/repo";
import { type TcpBalancer, startTcpBalancer } from "@nbfleet/testkit/tcp-balancer";
import { type Fleet, startFleet } from "@nbfleet/testkit/terminal-fleet";
import { eventually } from "@nbfleet/testkit/wait";
import { Waiters } from "@nbfleet/testkit/waiters";
import { afterEach, describe, expect, it } from "vitest";
import { TerminalConnection } from "../terminal-client.js";
import { commandLine } from "./shell.js";

let fleet: Fleet | undefined;
afterEach(async () => {
  await fleet?.close();
  fleet = undefined;
});

function cliEnv(f: Fleet, token = f.controller.adminToken, url = f.controller.url): NodeJS.ProcessEnv {
  return { ...process.env, NBFLEET_URL: url, NBFLEET_TOKEN: token, NBFLEET_DATA_DIR: f.logDir };
}

function cli(
  f: Fleet,
  args: string[],
  options: { stdin?: string | Buffer; token?: string; onStdout?: (text: string) => void } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bundledCli(), ...args], {
      env: cliEnv(f, options.token),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c;
      options.onStdout?.(stdout);
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c;
    });
    child.stdin.end(options.stdin ?? "");
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** The CLI in a pseudo-terminal of its own, then `stty -a` of that terminal once it exits. */
async function cliInPty(f: Fleet, args: string[], url = f.controller.url) {
  const pty = await loadNodePty();
  const quoted = [process.execPath, bundledCli(), ...args].map(shellQuote).join(" ");
  const term = pty.spawn("/bin/sh", ["-c", `${quoted}; echo "cli-exit=$?"; stty -a`], {
    cols: 100,
    rows: 30,
    env: cliEnv(f, f.controller.adminToken, url) as Record<string, string>,
    encoding: null,
  });
  const waiters = new Waiters();
  let output = "";
  let exited = false;
  term.onData((data: string | Buffer) => {
    output += data.toString();
    waiters.notify();
  });
  term.onExit(() => {
    exited = true;
    waiters.notify();
  });
  return {
    term,
    output: () => output,
    until: (match: RegExp, from = 0, timeoutMs = 15_000) =>
      waiters.until(() => match.exec(output.slice(from)), `the CLI's terminal to show ${match}`, timeoutMs),
    exited: () => waiters.until(() => exited, "the CLI's terminal to end", 15_000),
  };
}

const CLI_TIMEOUT = 120_000;
/** What the CLI writes before a reattach's replay (a terminal reset, ESC c). */
const RESET_SCREEN = String.fromCharCode(27, 99);

describe("nbfleet exec", () => {
  it(
    "exits with the remote exit code and keeps stdout and stderr apart",
    async () => {
      fleet = await startFleet();
      await fleet.addVm("box");
      const ok = await cli(fleet, ["exec", "box", "--", "echo out; echo err >&2"]);
      expect(ok).toEqual({ code: 0, stdout: "out\n", stderr: "err\n" });
      expect((await cli(fleet, ["exec", "box", "--", "sh", "-c", "exit 3"])).code).toBe(3);
      const missing = await cli(fleet, ["exec", "box", "--", "no-such-command-nbfleet"]);
      expect(missing.code).toBe(127);
      expect(missing.stderr).toMatch(/not found/);
      const piped = await cli(fleet, ["exec", "box", "--", "tr", "a-z", "A-Z"], { stdin: "shout this\n" });
      expect(piped).toMatchObject({ code: 0, stdout: "SHOUT THIS\n" });
      const killed = await cli(fleet, ["exec", "box", "--", "kill -TERM $$"]);
      expect(killed.code).toBe(128 + 15);
    },
    CLI_TIMEOUT,
  );

  it(
    "uploads through stdin at the pace the command reads it, however much that is",
    async () => {
      fleet = await startFleet();
      await fleet.addVm("box");
      const dir = await mkdtemp(path.join(os.tmpdir(), "nbf-exec-upload-"));
      const file = path.join(dir, "f");
      const upload = randomBytes(24 * 1024 * 1024);
      try {
        // The command reads nothing for 2 s: the agent holds the controller back (pty.inputFlow)
        // instead of ending the session once its input cap is reached.
        const started = Date.now();
        const run = await cli(fleet, ["exec", "box", "--", `sleep 2; cat > ${shellQuote(file)}`], {
          stdin: upload,
        });
        expect(run).toMatchObject({ code: 0, stderr: "" });
        expect(Date.now() - started).toBeGreaterThan(2000);
        expect(await digestOfFile(file)).toEqual(digestOf(upload));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    CLI_TIMEOUT,
  );

  it(
    "fails before the command with the API's reason and the CLI's exit codes",
    async () => {
      fleet = await startFleet();
      await fleet.addVm("box");
      const viewer = await cli(fleet, ["exec", "box", "--", "true"], { token: await fleet.token("viewer") });
      expect(viewer.code).toBe(1);
      expect(viewer.stderr).toMatch(/role viewer may not .* needs role admin \[NBF_FORBIDDEN\]/);
      const ghost = await cli(fleet, ["exec", "ghost", "--", "true"]);
      expect(ghost.code).toBe(3);
      expect(ghost.stderr).toMatch(/no VM named ghost \[NBF_VM_NOT_FOUND\]/);
    },
    CLI_TIMEOUT,
  );

  it("quotes several words so each stays one argument; one word is a command line as it is", () => {
    expect(commandLine(["sh", "-c", "exit 3"])).toBe("sh -c 'exit 3'");
    expect(commandLine(["echo", "it's"])).toBe("echo 'it'\\''s'");
    expect(commandLine(["ls | wc -l"])).toBe("ls | wc -l");
  });
});

describe("nbfleet shell", () => {
  it(
    "runs in raw mode, follows window resizes, passes Ctrl-C on, and restores the terminal at exit",
    async () => {
      fleet = await startFleet();
      await fleet.addVm("box");
      const t = await cliInPty(fleet, ["shell", "box"]);
      t.term.write("stty size\r");
      await t.until(/\D30 100\r+\n/);
      let from = t.output().length;
      t.term.resize(120, 40);
      // SIGWINCH reaches the CLI, which tells the remote side.
      await sleep(300);
      t.term.write("stty size\r");
      await t.until(/\D40 120\r+\n/, from);
      from = t.output().length;
      t.term.write("sleep 30; echo slept-through\r");
      await t.until(/sleep 30/, from);
      await sleep(300);
      t.term.write("\x03");
      t.term.write("echo still-$((5+5))\r");
      await t.until(/still-10/, from, 5000);
      t.term.write("exit 3\r");
      await t.until(/cli-exit=3/);
      await t.exited();
      const stty = t.output().slice(t.output().indexOf("cli-exit=3"));
      // Canonical mode and echo are back: the CLI left raw mode.
      expect(stty).toMatch(/(^|\s)icanon(\s|$)/m);
      expect(stty).toMatch(/(^|\s)echo(\s|$)/m);
      expect(t.output()).not.toMatch(/\nslept-through/);
    },
    CLI_TIMEOUT,
  );

  it(
    "restores the terminal and says why when the agent vanishes; exit 255",
    async () => {
      fleet = await startFleet();
      const agent = await fleet.addVm("box");
      const t = await cliInPty(fleet, ["shell", "box"]);
      t.term.write("echo ready-$((1+1))\r");
      await t.until(/ready-2/);
      await agent.link.stop();
      await t.until(/cli-exit=255/);
      await t.exited();
      expect(t.output()).toMatch(/agent disconnected.*terminal session ended.*\[NBF_AGENT_NOT_CONNECTED\]/);
      expect(t.output().slice(t.output().indexOf("cli-exit="))).toMatch(/(^|\s)icanon(\s|$)/m);
    },
    CLI_TIMEOUT,
  );

  it(
    "on SIGTERM detaches (the session lives on), restores the terminal, and --session attaches again",
    async () => {
      fleet = await startFleet();
      await fleet.addVm("box");
      const t = await cliInPty(fleet, ["shell", "box"]);
      t.term.write("echo first-$((2*4))\r");
      await t.until(/first-8/);
      const { terminals } = fleet.controller.app.nbfleet;
      const [session] = (await terminals.list({ vmName: "box", limit: 1 })).map((s) => s.id);
      const cliPid = Number(
        (
          await new Promise<string>((resolve) =>
            spawn("pgrep", ["-f", "-n", `${bundledCli()} shell box`]).stdout.on("data", (d: Buffer) =>
              resolve(d.toString()),
            ),
          )
        ).trim(),
      );
      process.kill(cliPid, "SIGTERM");
      await t.until(/cli-exit=143/);
      await t.exited();
      expect(t.output()).toContain(`attach again with: nbfleet shell box --session ${session}`);
      expect(t.output().slice(t.output().indexOf("cli-exit="))).toMatch(/(^|\s)icanon(\s|$)/m);
      await eventually(
        async () =>
          terminals.find(session!, "box", (await fleet!.controller.app.nbfleet.store.tokens.list())[0]!)
            .attached,
        (attached) => !attached,
      );

      const again = await cliInPty(fleet, ["shell", "box", "--session", session!]);
      // The replay brings back what the first client saw.
      await again.until(/first-8/);
      again.term.write("exit\r");
      await again.until(/cli-exit=0/);
    },
    CLI_TIMEOUT,
  );
});

describe("nbfleet shell when its connection drops", () => {
  /**
   * `nbfleet shell box …` behind a balancer in front of the controller (so the CLI's connection
   * can drop while the session lives), once its shell has echoed `ready-42`.
   */
  async function shellBehindBalancer(extra: string[] = []) {
    fleet = await startFleet();
    await fleet.addVm("box");
    const { hostname, port } = new URL(fleet.controller.url);
    const backend = { host: hostname, port: Number(port) };
    const balancer = await startTcpBalancer([backend]);
    balancers.push(balancer);
    const t = await cliInPty(fleet, ["shell", "box", ...extra], balancer.url);
    t.term.write("echo ready-$((40+2))\r");
    await t.until(/ready-42/);
    const net = {
      /** Drops every connection and refuses new ones until `up`. */
      down: () => {
        balancer.setBackends([]);
        balancer.dropConnections();
      },
      up: () => balancer.setBackends([backend]),
    };
    return { f: fleet, t, net };
  }
  /** The CLI left raw mode: canonical mode is back in `stty -a` after its exit. */
  const terminalRestored = (t: { output(): string }) =>
    expect(t.output().slice(t.output().indexOf("cli-exit="))).toMatch(/(^|\s)icanon(\s|$)/m);
  const balancers: TcpBalancer[] = [];
  afterEach(async () => {
    for (const balancer of balancers.splice(0)) await balancer.close();
  });

  it(
    "attaches again by itself once the controller can be reached, redraws from the replay, and goes on in the same session",
    async () => {
      const { f, t, net } = await shellBehindBalancer();
      const from = t.output().length;
      net.down();
      await t.until(/connection to the controller dropped \(1006\); attaching again to session (\S+)/, from);
      // Refused for a while (the CLI keeps trying), then reachable again.
      await sleep(1200);
      net.up();
      // A clean screen, then the replay: what the session showed before the drop.
      await t.until(new RegExp(`${RESET_SCREEN}[\\s\\S]*ready-42`), from);
      const redrawn = t.output().length;
      t.term.write("echo after-$((2+2))\r");
      await t.until(/after-4/, redrawn);
      t.term.write("exit 4\r");
      await t.until(/cli-exit=4/);
      await t.exited();
      terminalRestored(t);
      // One session all along: the shell that echoed before the drop is the one that exited.
      const sessions = await f.controller.app.nbfleet.terminals.list({ vmName: "box", limit: 10 });
      expect(sessions).toHaveLength(1);
    },
    CLI_TIMEOUT,
  );

  it(
    "says why and exits 255 when the session is gone by the time it attaches again",
    async () => {
      const { f, t, net } = await shellBehindBalancer();
      const from = t.output().length;
      net.down();
      const [, session] = (await t.until(/attaching again to session (\S+)/, from))!;
      // Someone else ends the session while this CLI is away.
      const other = await TerminalConnection.open(
        { baseUrl: f.controller.url, token: f.controller.adminToken, vm: "box", session: session! },
        { output: () => {}, closed: () => {} },
      );
      other.end();
      await eventually(
        async () => (await f.controller.app.nbfleet.terminals.list({ vmName: "box", limit: 1 }))[0]!,
        (row) => row.closedAt !== null,
      );
      net.up();
      await t.until(/cli-exit=255/);
      await t.exited();
      expect(t.output().slice(from)).toMatch(
        /controller refused to attach again: .*\[NBF_TERMINAL_SESSION_NOT_FOUND\]; the session may still run on the machine/,
      );
      terminalRestored(t);
    },
    CLI_TIMEOUT,
  );

  it(
    "gives up at Ctrl-C while the controller is out of reach",
    async () => {
      const { f, t, net } = await shellBehindBalancer();
      net.down();
      await t.until(/attaching again/);
      await sleep(600);
      t.term.write("\x03");
      await t.until(/cli-exit=255/);
      await t.exited();
      expect(t.output()).toMatch(
        /gave up attaching again; the session may still run on the machine: nbfleet shell box --session \S+/,
      );
      terminalRestored(t);
    },
    CLI_TIMEOUT,
  );

  it(
    "with --no-reattach exits 255 at once and names the command that attaches again",
    async () => {
      const { f, t, net } = await shellBehindBalancer(["--no-reattach"]);
      net.down();
      await t.until(/cli-exit=255/);
      expect(t.output()).toMatch(
        /connection to the controller ended \(1006\).*nbfleet shell box --session \S+/,
      );
      expect(t.output()).not.toMatch(/attaching again/);
    },
    CLI_TIMEOUT,
  );
});

describe("nbfleet logs", () => {
  it(
    "prints the last lines, and with -f ends with the reason when the agent goes",
    async () => {
      fleet = await startFleet();
      const agent = await fleet.addVm("box");
      await writeFile(path.join(fleet.logDir, "box-notebook.log"), "one\ntwo\nthree\n");
      const tail = await cli(fleet, ["logs", "box", "-n", "2"], { token: await fleet.token("viewer") });
      expect(tail).toEqual({ code: 0, stdout: "two\nthree\n", stderr: "" });
      let printed!: () => void;
      const tailPrinted = new Promise<void>((resolve) => {
        printed = resolve;
      });
      const following = cli(fleet, ["logs", "box", "-f", "-n", "1"], {
        onStdout: (text) => text.includes("three") && printed(),
      });
      await tailPrinted;
      await agent.link.stop();
      const followed = await following;
      expect(followed.code).toBe(1);
      expect(followed.stdout).toBe("three\n");
      expect(followed.stderr).toMatch(/agent disconnected.*\[NBF_AGENT_NOT_CONNECTED\]/);
    },
    CLI_TIMEOUT,
  );
});

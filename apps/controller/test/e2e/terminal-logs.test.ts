/**
 * The whole path for terminals and logs, for real: `nbfleet server` as its own process, the
 * local provider booting a sandbox through the bootstrap, the bundled agent (node-pty shipped
 * in its artifact), Debian's Jupyter. A shell runs as the notebook's user; the notebook's log is
 * tailed and followed across a notebook restart, the new process's lines coming through.
 */
import { realpath } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { CommandView, TerminalSessionView, VmView } from "@nbfleet/shared";
import {
  type ControllerProcess,
  api,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { waitFor } from "@nbfleet/testkit/wait";
import { Waiters } from "@nbfleet/testkit/waiters";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TerminalConnection } from "../../src/cli/terminal-client.js";
import { sandboxUserName } from "../../src/providers/local/sandbox-user.js";

const TOKEN = "nbf_e2e-terminal-admin-token-42";
let controller: ControllerProcess;

beforeAll(async () => {
  controller = await startControllerProcess(makeDataDir(), await freePort(), TOKEN);
  const created = await api(controller)("POST", "/v1/vms", { name: "term1" });
  expect(created.status).toBe(201);
  await waitFor(
    "term1 running with its agent connected",
    async () => {
      const vm = (await api(controller)<VmView>("GET", "/v1/vms/term1")).body;
      return vm.agent.status === "connected" && vm.notebook.state === "running";
    },
    150_000,
  );
});

afterAll(async () => {
  await api(controller)("DELETE", "/v1/vms/term1").catch(() => undefined);
  await stopControllerProcess(controller);
});

describe("terminal and logs with the real stack", () => {
  it("opens a login shell as the notebook's user through the bundled agent, and audits it", async () => {
    const waiters = new Waiters();
    let output = "";
    const connection = await TerminalConnection.open(
      { baseUrl: controller.url, token: TOKEN, vm: "term1", cols: 120, rows: 40 },
      {
        output: (_channel, data) => {
          output += data.toString();
          waiters.notify();
        },
        closed: () => waiters.notify(),
      },
    );
    connection.input('echo "who=$(id -un) home=$HOME term=$TERM size=$(stty size)"\r');
    const line = await waiters.until(
      () => /who=(\S+) home=(\S+) term=(\S+) size=(\d+ \d+)/.exec(output),
      "the shell's answer",
      30_000,
    );
    // As root each local machine's notebook (and so its shell) runs as the machine's own user.
    const root = await realpath(path.join(controller.dataDir, "sandboxes"));
    const expectedUser = process.getuid?.() === 0 ? sandboxUserName(root, "term1") : os.userInfo().username;
    expect(line.slice(1)).toEqual([expectedUser, expect.stringMatching(/^\//), "xterm-256color", "40 120"]);
    connection.input("exit 4\r");
    await waiters.until(() => !connection.open, "the session to end", 30_000);

    const exec = await new Promise<number | null>((resolve, reject) => {
      TerminalConnection.open(
        { baseUrl: controller.url, token: TOKEN, vm: "term1", command: "exit 3" },
        {
          output: () => {},
          control: (frame) => frame.type === "exit" && resolve(frame.exitCode),
          closed: () => {},
        },
      ).catch(reject);
    });
    expect(exec).toBe(3);

    const audit = await waitFor(
      "both sessions closed in the audit log",
      async () => {
        const { body } = await api(controller)<{ items: TerminalSessionView[] }>(
          "GET",
          "/v1/terminal-sessions?vm=term1",
        );
        return body.items.length === 2 && body.items.every((s) => s.closedAt !== null) && body.items;
      },
      150_000,
    );
    expect(audit.map((s) => [s.kind, s.exitCode, s.endReason])).toEqual([
      ["exec", 3, "exited"],
      ["shell", 4, "exited"],
    ]);
  });

  it("tails the notebook's log and follows it across a notebook restart", async () => {
    const tail = await fetch(`${controller.url}/v1/vms/term1/logs?lines=200`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(tail.status).toBe(200);
    const text = await tail.text();
    expect(text).toMatch(/Serving notebooks from local directory/);
    for (const line of text.split("\n").filter((l) => l.includes("token="))) {
      expect(line).toMatch(/token=\[redacted\]/);
    }

    const abort = new AbortController();
    const waiters = new Waiters();
    const lines: string[] = [];
    const response = await fetch(`${controller.url}/v1/vms/term1/logs?lines=0&follow=1&format=ndjson`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: abort.signal,
    });
    expect(response.status).toBe(200);
    const reading = (async () => {
      let buffer = "";
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        buffer += Buffer.from(chunk).toString("utf8");
        for (let at = buffer.indexOf("\n"); at >= 0; at = buffer.indexOf("\n")) {
          const record = JSON.parse(buffer.slice(0, at)) as { line?: string };
          if (record.line !== undefined) lines.push(record.line);
          buffer = buffer.slice(at + 1);
        }
        waiters.notify();
      }
    })().catch(() => undefined);

    const before = (await api(controller)<VmView>("GET", "/v1/vms/term1")).body.notebook.pid;
    const queued = await api(controller)<CommandView>("POST", "/v1/vms/term1/notebook/restart");
    const done = await api(controller)<CommandView>("GET", `/v1/commands/${queued.body.id}?wait=60`);
    expect(done.body.state).toBe("succeeded");
    // The old server's last words and the new server's first ones, on the same follow.
    await waiters.until(
      () => lines.some((l) => /received signal 15, stopping/.test(l)),
      "the old server stopping",
      60_000,
    );
    await waiters.until(
      () => lines.some((l) => /Serving notebooks from local directory/.test(l)),
      "the new server's start-up lines",
      60_000,
    );
    const after = (await api(controller)<VmView>("GET", "/v1/vms/term1")).body.notebook.pid;
    expect(after).not.toBe(before);
    abort.abort();
    await reading;
  });
});

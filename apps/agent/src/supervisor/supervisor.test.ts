import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { freePort } from "@nbfleet/testkit/ports";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_SETTINGS } from "../config/settings.js";
import { Supervisor } from "./supervisor.js";

// A stand-in server: it listens, hands its listening socket to a helper in its process group
// (as a kernel that is still starting can hold it), and exits at once on SIGTERM, while the
// helper shrugs SIGTERM off and keeps the port for another 400 ms. The server counts as ready
// once the helper wrote its pid file.
const SERVER = `
const net = require("node:net");
const { spawn } = require("node:child_process");
const server = net.createServer((s) => s.end()).listen(Number(process.argv[1]), "127.0.0.1", () => {
  const helper = "process.on('SIGTERM', () => setTimeout(() => process.exit(), 400));" +
    "require('node:fs').writeFileSync(process.argv[1], String(process.pid)); setInterval(() => {}, 1000)";
  spawn(process.execPath, ["-e", helper, process.argv[2]], {
    stdio: ["ignore", "ignore", "ignore", server._handle.fd],
  });
});
process.on("SIGTERM", () => process.exit(0));
`;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "nbf-supervisor-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

describe("Supervisor", () => {
  it("restarts only once the port is free again, even if the group still held it after the server exited", async () => {
    const port = await freePort();
    let launches = 0;
    const helperPidFile = () => path.join(dir, `helper-${launches}.pid`);
    const supervisor = new Supervisor({
      ip: "127.0.0.1",
      port,
      pidFile: path.join(dir, "notebook.pid"),
      logFile: path.join(dir, "notebook.log"),
      logMaxBytes: 1024 * 1024,
      restart: DEFAULT_SETTINGS.restart,
      stopGraceMs: 5000,
      probe: async () => existsSync(helperPidFile()) && (await answers(port)),
      launchSpec: async () => ({
        argv: [process.execPath, "-e", SERVER, String(port), helperPidFile()],
        env: { PATH: process.env.PATH },
        cwd: dir,
        owner: null,
      }),
      onEvent: () => undefined,
      onChange: () => undefined,
    });
    try {
      await supervisor.start();
      const first = supervisor.snapshot().pid;
      launches += 1;
      const t0 = Date.now();
      await supervisor.restart(); // without waiting for the port: NBF_PORT_IN_USE
      expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
      expect(supervisor.snapshot()).toMatchObject({ state: "running", restarts: 1 });
      expect(supervisor.snapshot().pid).not.toBe(first);
    } finally {
      await supervisor.stop();
      supervisor.detach();
    }
  });
});

import { execFileSync, spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CONFIG_HEADER, type ConfigOptions, FAST_EXIT, configFileName, renderConfig } from "./config.js";

const OPTS: ConfigOptions = {
  ip: "0.0.0.0",
  port: 9999,
  notebookDir: "/var/lib/nbfleet/notebooks",
  baseUrl: "/",
  certFile: "/var/lib/nbfleet/profile/nbserver/cert.pem",
  keyFile: "/var/lib/nbfleet/profile/nbserver/key.pem",
  passwordHash: "argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdA$aGFzaA",
  agentToken: "ab".repeat(32),
};

describe("configFileName", () => {
  it("matches the generation", () => {
    expect(configFileName("notebook6")).toBe("jupyter_notebook_config.py");
    expect(configFileName("server2")).toBe("jupyter_server_config.py");
  });
});

describe("renderConfig", () => {
  it("notebook6 uses NotebookApp traits", () => {
    expect(renderConfig("notebook6", OPTS)).toBe(
      [
        CONFIG_HEADER,
        "c = get_config()  # noqa: F821",
        "c.NotebookApp.certfile = '/var/lib/nbfleet/profile/nbserver/cert.pem'",
        "c.NotebookApp.keyfile = '/var/lib/nbfleet/profile/nbserver/key.pem'",
        "c.NotebookApp.ip = '0.0.0.0'",
        "c.NotebookApp.port = 9999",
        "c.NotebookApp.port_retries = 0",
        "c.NotebookApp.open_browser = False",
        "c.NotebookApp.notebook_dir = '/var/lib/nbfleet/notebooks'",
        "c.NotebookApp.base_url = '/'",
        "c.NotebookApp.password = 'argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdA$aGFzaA'",
        "c.NotebookApp.password_required = True",
        `c.NotebookApp.token = '${"ab".repeat(32)}'`,
        "c.NotebookApp.allow_password_change = False",
        "c.NotebookApp.allow_root = False",
        FAST_EXIT,
        "",
      ].join("\n"),
    );
  });

  it("server2 uses ServerApp and the identity providers", () => {
    expect(renderConfig("server2", { ...OPTS, allowRoot: true })).toBe(
      [
        CONFIG_HEADER,
        "c = get_config()  # noqa: F821",
        "c.ServerApp.certfile = '/var/lib/nbfleet/profile/nbserver/cert.pem'",
        "c.ServerApp.keyfile = '/var/lib/nbfleet/profile/nbserver/key.pem'",
        "c.ServerApp.ip = '0.0.0.0'",
        "c.ServerApp.port = 9999",
        "c.ServerApp.port_retries = 0",
        "c.ServerApp.open_browser = False",
        "c.ServerApp.root_dir = '/var/lib/nbfleet/notebooks'",
        "c.ServerApp.base_url = '/'",
        "c.ServerApp.allow_root = True",
        "c.PasswordIdentityProvider.hashed_password = 'argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdA$aGFzaA'",
        "c.PasswordIdentityProvider.allow_password_change = False",
        `c.IdentityProvider.token = '${"ab".repeat(32)}'`,
        FAST_EXIT,
        "",
      ].join("\n"),
    );
  });

  it("leaves out TLS without a certificate and the password (and its requirement) without a hash", () => {
    const text = renderConfig("notebook6", { ...OPTS, certFile: null, keyFile: null, passwordHash: null });
    expect(text).not.toMatch(/certfile|keyfile|password =|password_required/);
    expect(text).toContain("c.NotebookApp.token = ");
    expect(renderConfig("server2", { ...OPTS, passwordHash: null })).not.toContain("hashed_password");
  });

  it("refuses values that would make a broken or open server", () => {
    expect(() => renderConfig("notebook6", { ...OPTS, port: 0 })).toThrow(/port must be an integer/);
    expect(() => renderConfig("notebook6", { ...OPTS, port: 9999.5 })).toThrow(/port/);
    expect(() => renderConfig("notebook6", { ...OPTS, agentToken: "" })).toThrow(
      /agentToken must not be empty/,
    );
    expect(() => renderConfig("server2", { ...OPTS, notebookDir: "notebooks" })).toThrow(/absolute path/);
    expect(() => renderConfig("server2", { ...OPTS, baseUrl: "nb/" })).toThrow(/must start with \//);
    expect(() => renderConfig("server2", { ...OPTS, keyFile: null })).toThrow(/both set or both null/);
    expect(() => renderConfig("server2", { ...OPTS, ip: "" })).toThrow(/ip must not be empty/);
  });

  it("is loaded by the real traitlets with every value intact, for both generations", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "nbf-config-"));
    try {
      const opts = { ...OPTS, notebookDir: '/srv/it\'s "here"\\\n', baseUrl: "/a'b\"c\\d\u2028/" };
      for (const generation of ["notebook6", "server2"] as const) {
        await writeFile(path.join(dir, configFileName(generation)), renderConfig(generation, opts));
      }
      const program = `
import json, sys
from traitlets.config.loader import PyFileConfigLoader
out = {}
for name in ("jupyter_notebook_config.py", "jupyter_server_config.py"):
    out[name] = PyFileConfigLoader(name, path=sys.argv[1]).load_config()
print(json.dumps(out))
`;
      const loaded = JSON.parse(execFileSync("/usr/bin/python3", ["-c", program, dir], { encoding: "utf8" }));
      expect(loaded["jupyter_notebook_config.py"].NotebookApp).toMatchObject({
        notebook_dir: opts.notebookDir,
        base_url: opts.baseUrl,
        port: 9999,
        port_retries: 0,
        open_browser: false,
        allow_root: false,
        password_required: true,
        token: opts.agentToken,
      });
      expect(loaded["jupyter_server_config.py"]).toMatchObject({
        ServerApp: { root_dir: opts.notebookDir, base_url: opts.baseUrl, port: 9999, allow_root: false },
        PasswordIdentityProvider: { hashed_password: opts.passwordHash, allow_password_change: false },
        IdentityProvider: { token: opts.agentToken },
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("skips the interpreter's teardown at exit and keeps the exit status", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "nbf-config-"));
    try {
      await writeFile(path.join(dir, configFileName("notebook6")), renderConfig("notebook6", OPTS));
      const exitWith = (then: string) => {
        // An exit handler from before the config stands for the teardown: it must not run.
        const program = `
import atexit, sys
atexit.register(lambda: print("teardown ran", flush=True))
from traitlets.config.loader import PyFileConfigLoader
PyFileConfigLoader("jupyter_notebook_config.py", path=sys.argv[1]).load_config()
print("loaded", flush=True)
${then}
`;
        const run = spawnSync("/usr/bin/python3", ["-c", program, dir], { encoding: "utf8" });
        return { status: run.status, out: run.stdout, err: run.stderr };
      };
      expect(exitWith("pass")).toMatchObject({ status: 0, out: "loaded\n" });
      expect(exitWith("sys.exit(3)").status).toBe(3);
      expect(exitWith("sys.exit('the port is taken')")).toMatchObject({
        status: 1,
        err: "the port is taken\n",
      });
      const crash = exitWith("raise RuntimeError('boom')");
      expect(crash.status).toBe(1);
      expect(crash.err).toContain("RuntimeError: boom");
      // Output still buffered when the process ends is written, not lost with the teardown.
      expect(exitWith("sys.stdout.write('unflushed')").out).toBe("loaded\nunflushed");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

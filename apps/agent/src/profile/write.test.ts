import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dataPaths } from "../config/paths.js";
import { renderConfig } from "./config.js";
import { type ProfileOptions, ensureAgentToken, profileEnv, writeProfile } from "./write.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "nbf-profile-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function options(notebookDir: string): ProfileOptions {
  return {
    ip: "127.0.0.1",
    port: 9999,
    notebookDir,
    baseUrl: "/",
    certFile: null,
    keyFile: null,
    passwordHash: "sha1:0123456789ab:0123456789abcdef0123456789abcdef01234567",
  };
}

const mode = async (file: string) => (await stat(file)).mode & 0o777;

describe("ensureAgentToken", () => {
  it("creates a 0600 token of 32 random bytes and keeps it afterwards", async () => {
    const paths = dataPaths(dir);
    const token = await ensureAgentToken(paths);
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect(await mode(paths.agentTokenFile)).toBe(0o600);
    expect(await ensureAgentToken(paths)).toBe(token);
    expect(await ensureAgentToken(dataPaths(path.join(dir, "other")))).not.toBe(token);
  });

  it("replaces a malformed token file", async () => {
    const paths = dataPaths(dir);
    await mkdir(paths.configDir, { recursive: true });
    await writeFile(paths.agentTokenFile, "short\n", { mode: 0o644 });
    const token = await ensureAgentToken(paths);
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect((await readFile(paths.agentTokenFile, "utf8")).trim()).toBe(token);
    expect(await mode(paths.agentTokenFile)).toBe(0o600);
  });
});

describe("writeProfile", () => {
  it("lays out the profile with a 0600 config of the detected generation", async () => {
    const paths = dataPaths(dir);
    const notebookDir = path.join(dir, "my notebooks");
    const owner = { uid: process.getuid!(), gid: process.getgid!() };
    const written = await writeProfile(paths, "notebook6", options(notebookDir), owner);
    expect(written.configFile).toBe(path.join(paths.configDir, "jupyter_notebook_config.py"));
    expect(await readFile(written.configFile, "utf8")).toBe(
      renderConfig("notebook6", { ...options(notebookDir), agentToken: written.agentToken }),
    );
    expect(await mode(written.configFile)).toBe(0o600);
    for (const sub of [paths.configDir, paths.runtimeDir, paths.jupyterDataDir]) {
      expect(await mode(sub)).toBe(0o700);
    }
    expect((await stat(notebookDir)).isDirectory()).toBe(true);
    expect(written.agentToken).toBe((await readFile(paths.agentTokenFile, "utf8")).trim());
  });

  it("switching generation removes the other config file and keeps the token", async () => {
    const paths = dataPaths(dir);
    const first = await writeProfile(paths, "notebook6", options(paths.defaultNotebookDir));
    const second = await writeProfile(paths, "server2", options(paths.defaultNotebookDir));
    expect(second.agentToken).toBe(first.agentToken);
    await expect(stat(first.configFile)).rejects.toThrow(/ENOENT/);
    expect(path.basename(second.configFile)).toBe("jupyter_server_config.py");
  });

  it("uses a given agent token instead of the file's", async () => {
    const paths = dataPaths(dir);
    const written = await writeProfile(paths, "server2", {
      ...options(paths.defaultNotebookDir),
      agentToken: "c".repeat(64),
    });
    expect(written.agentToken).toBe("c".repeat(64));
    expect(await readFile(written.configFile, "utf8")).toContain(
      `c.IdentityProvider.token = '${"c".repeat(64)}'`,
    );
  });

  it("profileEnv points Jupyter at the profile, and Jupyter agrees", async () => {
    const paths = dataPaths(dir);
    await writeProfile(paths, "notebook6", options(paths.defaultNotebookDir));
    const env = profileEnv(paths);
    expect(env).toEqual({
      JUPYTER_CONFIG_DIR: paths.configDir,
      JUPYTER_RUNTIME_DIR: paths.runtimeDir,
      JUPYTER_DATA_DIR: paths.jupyterDataDir,
    });
    const out = execFileSync(
      "/usr/bin/python3",
      [
        "-c",
        "import jupyter_core.paths as p, json; print(json.dumps([p.jupyter_config_dir(), p.jupyter_runtime_dir(), p.jupyter_data_dir()]))",
      ],
      { encoding: "utf8", env: { ...process.env, ...env } },
    );
    expect(JSON.parse(out)).toEqual([paths.configDir, paths.runtimeDir, paths.jupyterDataDir]);
  });
});

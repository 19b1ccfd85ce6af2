import { execFileSync, spawnSync } from "node:child_process";
import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dataPaths } from "../config/paths.js";
import { ensureCertificate } from "../tls/ensure.js";
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
    const written = await writeProfile(paths, "notebook6", options(notebookDir));
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

// The agent runs as root and the server as another user: that user must not be able to make
// the agent hand it a file it does not own (these tests run as root, as the agent does).
describe("a profile for another user, written as root", () => {
  const user = { uid: 4242, gid: 4242 };
  const as = (uid: number, ...command: string[]) =>
    spawnSync("setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", ...command], {
      encoding: "utf8",
    });

  /** A root-owned file (0640) the notebook's user must never get. */
  async function victim(name: string): Promise<string> {
    const file = path.join(dir, name);
    await writeFile(file, "root's secret\n", { mode: 0o640 });
    return file;
  }
  const ownerAndMode = async (file: string) => {
    const info = await lstat(file);
    return { uid: info.uid, gid: info.gid, mode: info.mode & 0o7777 };
  };

  beforeEach(async () => {
    await chmod(dir, 0o711);
  });

  it("keeps the profile and config dirs the agent's, so the user cannot put a link in them", async () => {
    const paths = dataPaths(dir);
    await writeProfile(paths, "notebook6", options(paths.defaultNotebookDir), user);
    const root = { uid: process.getuid!(), gid: process.getgid!() };
    for (const agents of [paths.profileDir, paths.configDir]) {
      expect(await ownerAndMode(agents)).toEqual({ ...root, mode: 0o711 });
    }
    for (const users of [
      paths.runtimeDir,
      paths.jupyterDataDir,
      path.join(paths.configDir, "nbconfig"),
      path.join(paths.configDir, "lab"),
    ]) {
      expect(await ownerAndMode(users)).toEqual({ ...user, mode: 0o700 });
    }
    for (const file of [paths.agentTokenFile, path.join(paths.configDir, "jupyter_notebook_config.py")]) {
      expect(await ownerAndMode(file)).toEqual({ ...user, mode: 0o600 });
    }
    const secret = await victim("shadow");
    for (const name of [paths.agentTokenFile, path.join(paths.configDir, "key.pem")]) {
      const planted = as(user.uid, "ln", "-sf", secret, name);
      expect(planted.status).not.toBe(0);
      expect(planted.stderr).toMatch(/Permission denied/);
    }
    // Its own dirs stay usable to it: Jupyter's runtime files, the front end's settings.
    expect(as(user.uid, "touch", path.join(paths.runtimeDir, "kernel-1.json")).status).toBe(0);
    expect(as(user.uid, "touch", path.join(paths.configDir, "nbconfig", "notebook.json")).status).toBe(0);
    expect(as(user.uid, "cat", paths.agentTokenFile).status).toBe(0);
  });

  it("after the earlier layout (the user owned both dirs), hands over no file the user linked in", async () => {
    const paths = dataPaths(dir);
    await mkdir(paths.configDir, { recursive: true, mode: 0o700 });
    const victims = {
      token: await victim("token-victim"),
      key: await victim("key-victim"),
      cert: await victim("cert-victim"),
      other: await victim("other-victim"),
      dir: path.join(dir, "dir-victim"),
    };
    await mkdir(victims.dir, { mode: 0o750 });
    await symlink(victims.token, paths.agentTokenFile);
    await symlink(victims.key, path.join(paths.configDir, "key.pem"));
    await symlink(victims.cert, path.join(paths.configDir, "cert.pem"));
    await symlink(victims.other, path.join(paths.configDir, "jupyter_notebook_config.py"));
    await symlink(victims.dir, paths.runtimeDir);
    await symlink(victims.dir, path.join(paths.configDir, "nbconfig"));
    for (const owned of [paths.profileDir, paths.configDir]) await chown(owned, user.uid, user.gid);
    const before = await Promise.all(Object.values(victims).map(ownerAndMode));

    await ensureCertificate(
      { certFile: path.join(paths.configDir, "cert.pem"), keyFile: path.join(paths.configDir, "key.pem") },
      { owner: user, hostnames: ["localhost"] },
    );
    await writeProfile(paths, "notebook6", options(paths.defaultNotebookDir), user);

    expect(await Promise.all(Object.values(victims).map(ownerAndMode))).toEqual(before);
    expect(await readFile(victims.token, "utf8")).toBe("root's secret\n");
    for (const replaced of [paths.agentTokenFile, path.join(paths.configDir, "jupyter_notebook_config.py")]) {
      expect((await lstat(replaced)).isFile()).toBe(true);
    }
    for (const replaced of [paths.runtimeDir, path.join(paths.configDir, "nbconfig")]) {
      expect((await lstat(replaced)).isDirectory()).toBe(true);
    }
    expect((await lstat(paths.configDir)).uid).toBe(process.getuid!());
  });

  it("replaces a token file left as a link, and leaves the link's target alone", async () => {
    const paths = dataPaths(dir);
    await writeProfile(paths, "notebook6", options(paths.defaultNotebookDir), user);
    const secret = await victim("linked");
    await writeFile(secret, `${"a".repeat(64)}\n`);
    await rm(paths.agentTokenFile);
    await symlink(secret, paths.agentTokenFile);
    await expect(ensureAgentToken(paths, user)).resolves.toMatch(/^[0-9a-f]{64}$/);
    expect(await ownerAndMode(secret)).toEqual({
      uid: process.getuid!(),
      gid: process.getgid!(),
      mode: 0o640,
    });
  });
});

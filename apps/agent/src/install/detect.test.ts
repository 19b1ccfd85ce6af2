import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CommandRunner } from "./command-runner.js";
import { classify, detectJupyter, readModuleVersions, shebangInterpreter } from "./detect.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "nbf-detect-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function script(file: string, content: string): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
  await chmod(file, 0o755);
  return file;
}

describe("classify", () => {
  it("notebook below 7 is notebook6, launched as `jupyter notebook`", () => {
    expect(classify("/j", { notebook: "6.4.12", jupyter_server: null })).toEqual({
      generation: "notebook6",
      version: "6.4.12",
      launch: ["/j", "notebook"],
    });
    expect(classify("/j", { notebook: "6.5.7", jupyter_server: "1.24.0" })?.generation).toBe("notebook6");
  });

  it("notebook 7 is server2, still launched as `jupyter notebook`", () => {
    expect(classify("/j", { notebook: "7.2.2", jupyter_server: "2.14.2" })).toEqual({
      generation: "server2",
      version: "7.2.2",
      launch: ["/j", "notebook"],
    });
  });

  it("jupyter_server alone is server2, launched as `jupyter server`", () => {
    expect(classify("/j", { notebook: null, jupyter_server: "2.14.2" })).toEqual({
      generation: "server2",
      version: "2.14.2",
      launch: ["/j", "server"],
    });
    expect(classify("/j", { notebook: null, jupyter_server: null })).toBeNull();
  });
});

describe("shebangInterpreter", () => {
  it("reads a direct interpreter path", async () => {
    const file = await script(path.join(dir, "a"), "#!/usr/bin/python3\n# -*- coding: utf-8 -*-\n");
    expect(await shebangInterpreter(file, {})).toBe("/usr/bin/python3");
  });

  it("resolves `env` forms on PATH, skipping env's flags", async () => {
    const bin = path.join(dir, "bin");
    const python = await script(path.join(bin, "python3"), "#!/bin/sh\n");
    const plain = await script(path.join(dir, "b"), "#!/usr/bin/env python3\n");
    const withFlag = await script(path.join(dir, "c"), "#! /usr/bin/env -S python3 -u\n");
    expect(await shebangInterpreter(plain, { PATH: `/nonexistent:${bin}` })).toBe(python);
    expect(await shebangInterpreter(withFlag, { PATH: bin })).toBe(python);
    expect(await shebangInterpreter(plain, { PATH: "/nonexistent" })).toBeNull();
  });

  it("returns null for files without a shebang or missing files", async () => {
    const binary = path.join(dir, "jupyter.exe");
    await writeFile(binary, Buffer.from([0x4d, 0x5a, 0x90, 0x00]));
    expect(await shebangInterpreter(binary, {})).toBeNull();
    expect(await shebangInterpreter(path.join(dir, "missing"), {})).toBeNull();
  });
});

describe("readModuleVersions with the real Debian Python", () => {
  it("reports notebook 6.4.12 and no jupyter_server", async () => {
    expect(await readModuleVersions("/usr/bin/python3")).toEqual({
      notebook: "6.4.12",
      jupyter_server: null,
    });
  });

  it("returns null when the interpreter does not exist", async () => {
    expect(await readModuleVersions(path.join(dir, "no-python"))).toBeNull();
  });
});

describe("detectJupyter", () => {
  it("looks in the venv first and asks the interpreter named by the script's shebang", async () => {
    const venvDir = path.join(dir, "venv");
    const jupyter = await script(path.join(venvDir, "bin", "jupyter"), "#!/usr/bin/python3\nimport sys\n");
    const found = await detectJupyter({ venvDir, env: { PATH: "" }, platform: "linux" });
    expect(found).toEqual({
      generation: "notebook6",
      version: "6.4.12",
      notebookVersion: "6.4.12",
      jupyterServerVersion: null,
      jupyterPath: jupyter,
      python: "/usr/bin/python3",
      launch: [jupyter, "notebook"],
    });
  });

  it("skips a venv whose interpreter has no Jupyter and falls back to /usr/bin", async () => {
    const venvDir = path.join(dir, "venv");
    const emptyPython = await script(path.join(dir, "python-without-jupyter"), "#!/bin/sh\necho '{}'\n");
    await script(path.join(venvDir, "bin", "jupyter"), `#!${emptyPython}\n`);
    const found = await detectJupyter({ venvDir, env: { PATH: "" }, platform: "linux" });
    expect(found?.jupyterPath).toBe("/usr/bin/jupyter");
    expect(found?.python).toBe("/usr/bin/python3");
  });

  it("uses a sibling python when the launcher has no shebang, and reads notebook 7 as server2", async () => {
    const venvDir = path.join(dir, "venv");
    const jupyter = path.join(venvDir, "bin", "jupyter");
    await mkdir(path.dirname(jupyter), { recursive: true });
    await writeFile(jupyter, Buffer.from([0x7f, 0x45, 0x4c, 0x46]), { mode: 0o755 });
    const python = await script(path.join(venvDir, "bin", "python3"), "#!/bin/sh\n");
    const asked: string[] = [];
    const runner: CommandRunner = async (argv) => {
      asked.push(argv[0]!);
      return { code: 0, stdout: '{"notebook": "7.2.2", "jupyter_server": "2.14.2"}\n', stderr: "" };
    };
    const found = await detectJupyter({ venvDir, env: { PATH: "" }, platform: "linux", runner });
    expect(asked[0]).toBe(python);
    expect(found).toMatchObject({
      generation: "server2",
      version: "7.2.2",
      python,
      launch: [jupyter, "notebook"],
    });
  });

  it("finds nothing when no candidate has Jupyter", async () => {
    const runner: CommandRunner = async () => ({
      code: 0,
      stdout: '{"notebook": null, "jupyter_server": null}',
      stderr: "",
    });
    expect(await detectJupyter({ venvDir: path.join(dir, "none"), env: { PATH: dir }, runner })).toBeNull();
  });
});

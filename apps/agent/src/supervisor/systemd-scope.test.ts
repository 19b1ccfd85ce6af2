import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { inSystemdScope } from "./systemd-scope.js";

const spec = {
  argv: ["/usr/bin/jupyter-notebook", "--no-browser"],
  env: { HOME: "/home/nbfleet" },
  cwd: "/home/nbfleet",
  owner: { uid: 998, gid: 997 },
};

describe("inSystemdScope", () => {
  it("starts the notebook server through systemd-run --scope, switching to its user there", () => {
    expect(inSystemdScope(spec, 9999, 42)).toEqual({
      ...spec,
      owner: null,
      argv: [
        "systemd-run",
        "--scope",
        "--quiet",
        "--collect",
        "--unit=nbfleet-notebook-9999-42",
        "--description=nbfleet: the Jupyter notebook server (outlives agent restarts)",
        "--uid=998",
        "--gid=997",
        "--",
        "/usr/bin/jupyter-notebook",
        "--no-browser",
      ],
    });
    expect(inSystemdScope({ ...spec, owner: null }, 8888, 1).argv).not.toContain("--uid=998");
  });

  // No systemd runs here (it is not pid 1): systemd-run parses its options, then fails to reach
  // the bus. An option it does not know fails earlier, naming it.
  it("gives systemd-run only options it knows", async () => {
    const [command, ...args] = inSystemdScope(spec, 9999, 42).argv;
    const failure = await promisify(execFile)(command!, args).then(
      () => null,
      (error: { stderr?: string }) => error.stderr ?? "",
    );
    if (failure === null) return; // a machine that does run systemd started it
    expect(failure).not.toMatch(/unrecognized|invalid option|unknown/i);
    expect(failure).toMatch(/bus|systemd/i);
  });
});

import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ScriptsError } from "../errors.js";
import {
  AZURE_CUSTOM_DATA_MAX_BYTES,
  CLOUD_BOOTSTRAP_PATH,
  type CloudInitOptions,
  customDataBase64,
  renderCloudInit,
} from "./cloud-init.js";
import { renderLinuxBootstrap } from "./linux.js";

const run = promisify(execFile);

const options: CloudInitOptions = {
  controllerUrl: "https://controller.example.net",
  artifactUrl: "https://controller.example.net/v1/agent/artifact",
  artifactSha256: "3f".repeat(32),
  bootstrapToken: "bt_0123456789abcdef'\"$(x)`y`",
  runAs: "azureuser",
  controllerCaPem: "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n",
  hostnames: ["nb-1.westeurope.cloudapp.azure.com"],
};

/** Debian's `cloud-init schema`: exit status and output for a user-data text. */
async function schemaCheck(userData: string): Promise<{ ok: boolean; output: string }> {
  const file = path.join(dir, `user-data-${Math.random().toString(16).slice(2)}.yaml`);
  await writeFile(file, userData);
  try {
    const { stdout, stderr } = await run("cloud-init", ["schema", "--config-file", file]);
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    if (failed.code === "ENOENT") {
      throw new Error(
        "`cloud-init` is not installed: `bash tools/ensure-system-packages.sh` (as root) adds it",
      );
    }
    return { ok: false, output: `${failed.stdout ?? ""}${failed.stderr ?? ""}` };
  }
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbfleet-cloud-init-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("renderCloudInit", () => {
  it("passes `cloud-init schema`, which does reject a broken config", async () => {
    const userData = renderCloudInit(options);
    expect(userData.startsWith("#cloud-config\n")).toBe(true);
    const valid = await schemaCheck(userData);
    expect(valid.output).toMatch(/^Valid (cloud-config|schema)/m);
    expect(valid.ok).toBe(true);

    const broken = await schemaCheck(`${userData}bootcmd: 5\n`);
    expect(broken.ok).toBe(false);
    expect(broken.output).toContain("bootcmd");
  }, 60_000);

  it("writes the systemd-mode bootstrap byte for byte and runs it once", () => {
    const config = parse(renderCloudInit(options));
    expect(config.write_files).toEqual([
      {
        path: CLOUD_BOOTSTRAP_PATH,
        owner: "root:root",
        permissions: "0700",
        content: renderLinuxBootstrap({
          ...options,
          mode: "systemd",
          dataDir: "/var/lib/nbfleet/agent",
          installDir: "/opt/nbfleet",
          bindIp: "0.0.0.0",
          notebookPort: 9999,
          publicPort: 443,
        }),
      },
    ]);
    expect(config.runcmd).toEqual([["sh", CLOUD_BOOTSTRAP_PATH]]);
    const script: string = config.write_files[0].content;
    expect(script).toContain("NBF_MODE='systemd'");
    expect(script).toContain("NBF_PUBLIC_PORT='443'");
  });
});

describe("customDataBase64", () => {
  it("encodes user-data as base64", () => {
    const userData = renderCloudInit(options);
    expect(Buffer.from(customDataBase64(userData), "base64").toString("utf8")).toBe(userData);
  });

  it("refuses user-data over Azure's 65535-byte customData limit", () => {
    expect(customDataBase64("x".repeat(AZURE_CUSTOM_DATA_MAX_BYTES))).toHaveLength(87380);
    const tooBig = `#cloud-config\n# ${"é".repeat(AZURE_CUSTOM_DATA_MAX_BYTES / 2)}\n`;
    let caught: unknown;
    try {
      customDataBase64(tooBig);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ScriptsError);
    expect((caught as ScriptsError).code).toBe("NBF_CUSTOM_DATA_TOO_LARGE");
    expect((caught as ScriptsError).message).toContain(`${Buffer.byteLength(tooBig)} bytes`);
  });
});

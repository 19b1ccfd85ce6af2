/**
 * packaging/nbfleet.service and nbfleet.env.example: the unit is checked by systemd's own
 * `systemd-analyze verify` (in a scratch root holding the system's units and a stand-in
 * /usr/bin/nbfleet, so it needs no systemd running), then parsed for the settings that make it
 * a hardened service; every variable the example names is one the controller reads.
 */
import { execFile } from "node:child_process";
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ENV_VARS } from "@nbfleet/controller";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const PACKAGING = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SYSTEM_UNITS = "/usr/lib/systemd/system";

type Unit = Map<string, Map<string, string[]>>;

/** systemd's unit syntax: [Section], Key=Value (a key may repeat), # and ; comments. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  for (const [index, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const eq = line.indexOf("=");
    if (!section || eq <= 0) throw new Error(`line ${index + 1} is neither a section nor Key=Value: ${raw}`);
    const key = line.slice(0, eq).trim();
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return unit;
}

function value(unit: Unit, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1);
}

let root: string;
let unitText: string;

beforeAll(async () => {
  unitText = await readFile(path.join(PACKAGING, "nbfleet.service"), "utf8");
  root = await mkdtemp(path.join(tmpdir(), "nbf-unit-"));
  await mkdir(path.join(root, "usr/bin"), { recursive: true });
  await mkdir(path.join(root, "etc/systemd/system"), { recursive: true });
  await cp(SYSTEM_UNITS, path.join(root, SYSTEM_UNITS), { recursive: true });
  await writeFile(path.join(root, "usr/bin/nbfleet"), "#!/bin/sh\n");
  await chmod(path.join(root, "usr/bin/nbfleet"), 0o755);
});

afterAll(() => rm(root, { recursive: true, force: true }));

/** `systemd-analyze verify` of `text` as /etc/systemd/system/<name>; its complaints, if any. */
async function verify(name: string, text: string): Promise<string> {
  await writeFile(path.join(root, "etc/systemd/system", name), text);
  const result = await run(
    "systemd-analyze",
    ["verify", "--man=no", `--root=${root}`, `/etc/systemd/system/${name}`],
    { timeout: 20_000 },
  ).catch((error: { stdout?: string; stderr?: string; message: string }) => ({
    stdout: error.stdout ?? "",
    stderr: error.stderr || error.message,
  }));
  return `${result.stdout}${result.stderr}`.trim();
}

describe("nbfleet.service", () => {
  it("passes systemd-analyze verify without a warning", async () => {
    expect(await verify("nbfleet.service", unitText)).toBe("");
  });

  it("is caught by the same check when a key is misspelt or a value is wrong", async () => {
    const misspelt = unitText.replace("NoNewPrivileges=yes", "NoNewPrivilegs=yes");
    expect(await verify("misspelt.service", misspelt)).toMatch(/Unknown key 'NoNewPrivilegs'/);
    const badRestart = unitText.replace("Restart=on-failure", "Restart=sometimes");
    expect(await verify("bad-restart.service", badRestart)).toMatch(/restart specifier/);
  });

  it("runs nbfleet server as its own user on the data dir, restarting on failure", () => {
    const unit = parseUnit(unitText);
    expect([...unit.keys()]).toEqual(["Unit", "Service", "Install"]);
    expect(value(unit, "Service", "User")).toBe("nbfleet");
    expect(value(unit, "Service", "Restart")).toBe("on-failure");
    expect(value(unit, "Service", "EnvironmentFile")).toBe("/etc/nbfleet/nbfleet.env");
    expect(value(unit, "Service", "ExecStart")).toBe("/usr/bin/nbfleet server --data-dir /var/lib/nbfleet");
    expect(value(unit, "Service", "StateDirectory")).toBe("nbfleet");
    expect(value(unit, "Service", "ReadWritePaths")).toBe("/var/lib/nbfleet");
    expect(value(unit, "Install", "WantedBy")).toBe("multi-user.target");
  });

  it("is hardened: no new privileges, a read-only system, no homes, private /tmp, one capability", () => {
    const unit = parseUnit(unitText);
    expect(value(unit, "Service", "NoNewPrivileges")).toBe("yes");
    expect(value(unit, "Service", "ProtectSystem")).toBe("strict");
    expect(value(unit, "Service", "ProtectHome")).toBe("yes");
    expect(value(unit, "Service", "PrivateTmp")).toBe("yes");
    expect(value(unit, "Service", "PrivateDevices")).toBe("yes");
    expect(value(unit, "Service", "CapabilityBoundingSet")).toBe("CAP_NET_BIND_SERVICE");
    expect(value(unit, "Service", "AmbientCapabilities")).toBe("CAP_NET_BIND_SERVICE");
    // V8 compiles code at run time: a unit that forbids writable-executable memory cannot run node.
    expect(value(unit, "Service", "MemoryDenyWriteExecute")).toBeUndefined();
  });

  it("rejects a line that is not Key=Value, naming it", () => {
    expect(() => parseUnit("[Service]\nUser nbfleet\n")).toThrow(/line 2 .*User nbfleet/);
  });
});

describe("nbfleet.env.example", () => {
  // Read by the Azure SDK's DefaultAzureCredential, not by nbfleet's settings.
  const AZURE_CREDENTIALS = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"];

  it("names only variables the controller (or the Azure SDK) reads, and the deployment ones", async () => {
    const text = await readFile(path.join(PACKAGING, "nbfleet.env.example"), "utf8");
    const named = [...text.matchAll(/^#?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!);
    const known = new Set([...Object.keys(ENV_VARS), "NBFLEET_CONFIG", ...AZURE_CREDENTIALS]);
    expect(named.filter((name) => !known.has(name))).toEqual([]);
    expect(named).toEqual(
      expect.arrayContaining([
        "NBFLEET_LISTEN",
        "NBFLEET_PUBLIC_URL",
        "NBFLEET_DATABASE_URL",
        "NBFLEET_REPLICA_URL",
        "NBFLEET_TLS_CERT",
        "NBFLEET_TLS_KEY",
        "NBFLEET_ADMIN_TOKEN",
        "NBFLEET_PROVIDER",
      ]),
    );
  });

  it("sets nothing by default: every line is a comment or blank", async () => {
    const text = await readFile(path.join(PACKAGING, "nbfleet.env.example"), "utf8");
    expect(text.split("\n").filter((line) => line.trim() !== "" && !line.startsWith("#"))).toEqual([]);
  });
});

import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { appendFile, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { AGENT_VERSION } from "@nbfleet/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentArtifact, buildAgentArtifact } from "./build.js";

const run = promisify(execFile);
const cleanup: string[] = [];
const tempDir = async (name: string) => {
  const dir = await mkdtemp(path.join(tmpdir(), `nbfleet-${name}-`));
  cleanup.push(dir);
  return dir;
};

describe("buildAgentArtifact", () => {
  let outDir: string;
  let artifact: AgentArtifact;
  let unpacked: string;

  beforeAll(async () => {
    outDir = await tempDir("artifact");
    artifact = await buildAgentArtifact({ outDir });
    unpacked = await tempDir("unpacked");
    await run("tar", ["-xzf", artifact.file, "-C", unpacked]);
  }, 120_000);
  afterAll(() => Promise.all(cleanup.map((dir) => rm(dir, { recursive: true, force: true }))));

  /** Runs `script` as a module beside the unpacked bundle, whose lazy `import(name)` it checks. */
  async function runBesideBundle(name: string, script: string): Promise<string> {
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], { cwd: unpacked });
    const bundleText = await readFile(path.join(unpacked, "nbfleet-agent.mjs"), "utf8");
    expect(bundleText).toContain(`import("${name}")`);
    return stdout.trim();
  }

  it("reports the file's real checksum, size and the agent version", async () => {
    const bytes = await readFile(artifact.file);
    expect(artifact.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
    expect(artifact.bytes).toBe(bytes.length);
    expect(artifact.version).toBe(AGENT_VERSION);
    expect(artifact.cached).toBe(false);
    expect(path.basename(artifact.file)).toBe("nbfleet-agent.tar.gz");
  });

  it("holds one bundle, a manifest and the platform's argon2 package", async () => {
    expect((await readdir(unpacked)).sort()).toEqual(["manifest.json", "nbfleet-agent.mjs", "node_modules"]);
    const manifest = JSON.parse(await readFile(path.join(unpacked, "manifest.json"), "utf8"));
    expect(manifest).toMatchObject({
      name: "nbfleet-agent",
      version: AGENT_VERSION,
      entry: "nbfleet-agent.mjs",
    });
    expect(manifest.native.map((n: { name: string }) => n.name)).toContain("@node-rs/argon2");
    const platformPackage = manifest.native.find((n: { name: string }) =>
      n.name.startsWith("@node-rs/argon2-"),
    );
    expect(platformPackage, "the prebuilt binary for this platform").toBeDefined();
  });

  it("runs with plain node from a directory outside the workspace", async () => {
    const bundle = path.join(unpacked, "nbfleet-agent.mjs");
    const version = await run(process.execPath, [bundle, "--version"], { cwd: unpacked });
    expect(version.stdout.trim()).toBe(AGENT_VERSION);
    const help = await run(process.execPath, [bundle, "--help"], { cwd: unpacked });
    expect(help.stdout).toContain("Usage: nbfleet-agent");
    expect(help.stdout).toMatch(/^\s+up \[options\]/m);
  });

  it("bundles @peculiar/x509 and reflect-metadata: installs a certificate and reads its fingerprint", async () => {
    const work = await tempDir("cert");
    const cert = path.join(work, "cert.pem");
    const key = path.join(work, "key.pem");
    await run("openssl", [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
      ...["-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=artifact-test"],
    ]);
    const { stdout } = await run(
      process.execPath,
      [
        path.join(unpacked, "nbfleet-agent.mjs"),
        ...["certificate", "install", "--data-dir", path.join(work, "agent")],
        ...["--cert-file", cert, "--key-file", key, "--json"],
      ],
      { cwd: unpacked },
    );
    const openssl = await run("openssl", ["x509", "-in", cert, "-noout", "-fingerprint", "-sha256"]);
    const expected = openssl.stdout.trim().split("=")[1];
    expect(JSON.parse(stdout).fingerprintSha256).toBe(expected);
  });

  it("ships an argon2 that the bundle's lazy import resolves and that hashes", async () => {
    // Resolved from the bundle's directory, exactly as its `import("@node-rs/argon2")` is.
    const script = `import("@node-rs/argon2").then(async (a) => {
      const h = await a.hash("pw", { memoryCost: 1024, timeCost: 1, parallelism: 1 });
      console.log(await a.verify(h, "pw"));
    })`;
    expect(await runBesideBundle("@node-rs/argon2", script)).toBe("true");
  });

  it("ships node-pty's runtime files only, and the bundle's lazy import runs a command in a pty", async () => {
    const manifest = JSON.parse(await readFile(path.join(unpacked, "manifest.json"), "utf8"));
    const names = manifest.native.map((n: { name: string }) => n.name);
    expect(names).toContain("node-pty");
    expect(names).not.toContain("node-addon-api");
    const ptyDir = path.join(unpacked, "node_modules", "node-pty");
    expect((await readdir(ptyDir)).sort()).toEqual(["LICENSE", "build", "lib", "package.json"]);
    expect(await readdir(path.join(ptyDir, "build", "Release"))).toContain("pty.node");
    const script = `import("node-pty").then((m) => {
      const p = (m.default ?? m).spawn("/bin/sh", ["-c", "stty size"], { cols: 77, rows: 11, encoding: null });
      let out = ""; p.onData((d) => { out += d; }); p.onExit(() => console.log(out.trim()));
    })`;
    expect(await runBesideBundle("node-pty", script)).toBe("11 77");
  });

  it("is a cache hit when no input changed, and rebuilds when the artifact was altered", async () => {
    const before = await stat(artifact.file);
    const again = await buildAgentArtifact({ outDir });
    expect(again).toEqual({ ...artifact, cached: true });
    expect((await stat(artifact.file)).mtimeMs).toBe(before.mtimeMs);

    await appendFile(artifact.file, randomBytes(4));
    const rebuilt = await buildAgentArtifact({ outDir });
    expect(rebuilt.cached).toBe(false);
    // The archive is reproducible: same inputs, same bytes.
    expect(rebuilt.sha256).toBe(artifact.sha256);
  });

  it("rebuilds when a recorded input changed", async () => {
    const record = path.join(outDir, "nbfleet-agent.build.json");
    const parsed = JSON.parse(await readFile(record, "utf8"));
    const [first] = Object.keys(parsed.inputs);
    parsed.inputs[first!] = "0".repeat(64);
    await writeFile(record, JSON.stringify(parsed));
    expect((await buildAgentArtifact({ outDir })).cached).toBe(false);
    expect((await buildAgentArtifact({ outDir })).cached).toBe(true);
  });
});

/**
 * One guest's upgrade, for real: the rendered sandbox launcher runs the real agent (from source,
 * through a small `nbfleet-agent.mjs` per version that names its version and loads the agent
 * under tsx) with Debian's Jupyter, linked over TLS (a pinned certificate) to the fake
 * controller, which also serves the artifacts. `agent.upgrade` to B: the agent checks and
 * switches, exits 75, the launcher starts B at once, B reconnects reporting B, re-adopts the same
 * notebook server and confirms. Then C, whose agent exits at start: the launcher rolls back to B
 * after 3 exits and B reports why.
 */
import { execFile } from "node:child_process";
import { type ChildProcess, spawn } from "node:child_process";
import { X509Certificate, createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { AgentEvent, HelloMessage, StateMessage } from "@nbfleet/shared";
import { generateReleaseKeyPair, signArtifact } from "@nbfleet/shared/artifact-signature";
import { FakeController } from "@nbfleet/testkit/fake-controller";
import { freePort } from "@nbfleet/testkit/ports";
import { agentMain, repoRoot } from "@nbfleet/testkit/repo";
import { selfSignedPair } from "@nbfleet/testkit/test-ca";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { linuxGuestLayout, renderLauncher } from "../../src/bootstrap/linux.js";

const run = promisify(execFile);
const A = "0.1.0-h2.a";
const B = "0.1.0-h2.b";
const C = "0.1.0-h2.c";
const TOKEN = "nbfb_agent-upgrade-sandbox-0123456789";
const TSX_API = path.join(repoRoot, "node_modules/tsx/dist/esm/api/index.mjs");

let root: string;
let install: string;
let fake: FakeController;
let launcher: ChildProcess | undefined;
let keys: { privateKeyPem: string; publicKeyPem: string };
const artifacts: Record<string, Buffer> = {};
let console_ = "";

/** The agent as version `version`: names itself through the build's define, then runs the source. */
function agentEntry(version: string): string {
  return [
    `globalThis.__NBFLEET_AGENT_VERSION__ = ${JSON.stringify(version)};`,
    `const { register } = await import(${JSON.stringify(TSX_API)});`,
    "register();",
    `await import(${JSON.stringify(agentMain)});`,
  ].join("\n");
}

async function pack(version: string, entry: string): Promise<Buffer> {
  const dir = await mkdtemp(path.join(root, `pack-${version}-`));
  await writeFile(path.join(dir, "manifest.json"), JSON.stringify({ name: "nbfleet-agent", version }));
  await writeFile(path.join(dir, "nbfleet-agent.mjs"), `${entry}\n`);
  const file = `${dir}.tar.gz`;
  await run("tar", ["-czf", file, "-C", dir, "manifest.json", "nbfleet-agent.mjs"]);
  return readFile(file);
}

function upgradeTo(version: string, timeoutSec = 90) {
  const bytes = artifacts[version]!;
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  return fake.command("agent.upgrade", {
    version,
    sha256,
    signature: signArtifact(keys.privateKeyPem, version, sha256),
    bytes: bytes.length,
    timeoutSec,
  });
}

const hellos = () => fake.messagesOf("hello").map((r) => r.message as HelloMessage);
const events = () => fake.messagesOf("event").map((r) => r.message.event as AgentEvent);
const lastState = () => (fake.messagesOf("state").at(-1)?.message as StateMessage | undefined)?.state;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), "nbf-upgrade-sandbox-"));
  // As root the agent runs the notebook as the unprivileged `nbfleet` user, who must reach the data dir.
  await chmod(root, 0o755);
  install = path.join(root, "install");
  keys = generateReleaseKeyPair();
  artifacts[B] = await pack(B, agentEntry(B));
  artifacts[C] = await pack(C, 'console.error("agent C cannot start"); process.exit(1);');
  const files = await selfSignedPair(root, "controller");
  const tls = { cert: await readFile(files.cert, "utf8"), key: await readFile(files.key, "utf8") };
  fake = await FakeController.start({
    tls: { certPem: tls.cert, keyPem: tls.key },
    files: Object.fromEntries(
      Object.entries(artifacts).map(([version, bytes]) => [`/v1/agent/artifacts/${version}/file`, bytes]),
    ),
  });
  const layout = linuxGuestLayout(install);
  await mkdir(path.join(install, "versions", A), { recursive: true });
  await writeFile(path.join(install, "versions", A, "nbfleet-agent.mjs"), agentEntry(A));
  await symlink(`versions/${A}`, layout.current);
  await mkdir(path.join(install, "bin"));
  await symlink(process.execPath, layout.node);
  await writeFile(layout.tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  await writeFile(layout.releaseKeyFile, keys.publicKeyPem, { mode: 0o644 });
  const salt = "0123456789ab";
  const passwordHash = `sha1:${salt}:${createHash("sha1").update(`upgrade-test${salt}`).digest("hex")}`;
  await writeFile(layout.passwordHashFile, `${passwordHash}\n`, { mode: 0o600 });
  const script = renderLauncher({
    mode: "sandbox",
    controllerUrl: fake.url,
    artifactUrl: `${fake.url}/v1/agent/artifact`,
    artifactSha256: "0".repeat(64),
    bootstrapToken: TOKEN,
    dataDir: path.join(root, "agent"),
    installDir: install,
    notebookPort: await freePort(),
    bindIp: "127.0.0.1",
    controllerFingerprint: new X509Certificate(tls.cert).fingerprint256,
    controllerCertPem: tls.cert,
    releasePublicKeyPem: keys.publicKeyPem,
    passwordHash,
  });
  await writeFile(layout.launcher, script, { mode: 0o755 });
  launcher = spawn("sh", [layout.launcher], { stdio: ["ignore", "pipe", "pipe"] });
  for (const stream of [launcher.stdout, launcher.stderr]) {
    stream?.on("data", (chunk) => {
      console_ += chunk;
    });
  }
}, 180_000);

afterAll(async () => {
  if (launcher && launcher.exitCode === null) {
    const exited = new Promise((resolve) => launcher?.once("exit", resolve));
    launcher.kill("SIGINT"); // the agent stops its notebook server too
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))]);
  }
  await fake?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

describe("an agent upgrade on a sandbox guest (real launcher, real agent, real Jupyter)", () => {
  let notebookPid: number;

  it("connects as A and offers agent.upgrade", async () => {
    await fake.waitForWelcomed(1, 120_000);
    expect(hellos()[0]!.agent.version).toBe(A);
    expect(hellos()[0]!.capabilities).toContain("agent.upgrade");
    notebookPid = await fake.waitFor(
      () => {
        const state = lastState() ?? hellos().at(-1)?.state;
        return state?.notebook.state === "running" ? state.notebook.pid! : undefined;
      },
      "the notebook server running",
      120_000,
    );
  });

  it("upgrades to B: answers, restarts as B with the same notebook server, confirms", async () => {
    const result = await fake.sendCommand(upgradeTo(B), 60_000);
    expect(result.message).toMatchObject({ ok: true, data: { from: A, to: B } });
    await fake.waitFor(() => hellos().find((h) => h.agent.version === B), "a hello from B", 60_000);
    expect(console_).toContain(`the agent switched versions; starting versions/${B}`);
    const completed = await fake.waitFor(
      () => events().find((e) => e.kind === "agent.upgrade.completed"),
      "agent.upgrade.completed",
      90_000,
    );
    expect(completed.data).toMatchObject({ from: A, to: B });
    expect(existsSync(path.join(install, "upgrade.json"))).toBe(false);
    expect(await readlink(path.join(install, "current"))).toBe(`versions/${B}`);
    expect(await readlink(path.join(install, "previous"))).toBe(`versions/${A}`);
    const bHello = hellos().find((h) => h.agent.version === B)!;
    expect(bHello.state.notebook.pid).toBe(notebookPid);
    expect(process.kill(notebookPid, 0)).toBe(true);
  });

  it("rolls a broken C back to B by itself, and B says why", async () => {
    const helloCount = hellos().length;
    const result = await fake.sendCommand(upgradeTo(C), 60_000);
    expect(result.message).toMatchObject({ ok: true, data: { from: B, to: C } });
    const rolledBack = await fake.waitFor(
      () => events().find((e) => e.kind === "agent.upgrade.rolled_back"),
      "agent.upgrade.rolled_back",
      90_000,
    );
    expect(rolledBack.level).toBe("error");
    expect(rolledBack.data).toEqual({
      from: B,
      to: C,
      reason: "the new agent exited 3 times (last status 1)",
    });
    expect(rolledBack.message).toContain(`from ${B} to ${C} was rolled back`);
    expect(
      hellos()
        .slice(helloCount)
        .every((h) => h.agent.version === B),
    ).toBe(true);
    expect(await readlink(path.join(install, "current"))).toBe(`versions/${B}`);
    await waitFor(
      "rollback.json removed",
      async () => !existsSync(path.join(install, "rollback.json")),
      10_000,
    );
    expect(existsSync(path.join(install, "upgrade.json"))).toBe(false);
    expect(process.kill(notebookPid, 0)).toBe(true);
    expect((await readdir(path.join(install, "versions"))).sort()).toEqual([A, B, C].sort());
  });

  it("refuses an artifact whose signature does not verify, switching nothing", async () => {
    const command = upgradeTo(C);
    const params = command.params as { signature: string };
    params.signature = signArtifact(generateReleaseKeyPair().privateKeyPem, C, "1".repeat(64));
    const result = await fake.sendCommand(command, 30_000);
    expect(result.message).toMatchObject({ ok: false, error: { code: "NBF_ARTIFACT_REFUSED" } });
    expect(result.message.error?.message).toContain("signature check failed");
    expect(await readlink(path.join(install, "current"))).toBe(`versions/${B}`);
  });
});

/**
 * A machine configured for ACME end to end: the sandbox bootstrap (its own `up` command line,
 * with `--certificate-mode acme --acme-*` and the ACME server's CA written beside the install)
 * starts the agent (this checkout's, from source), which gets its notebook's certificate from a
 * real ACME server (pebble, challenges validated against the agent's own HTTP-01 answer) and
 * reports it: issuer `acme` with the directory's host, a valid chain, the days left. A client
 * trusting only pebble's root then reaches the notebook with full verification.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { dataPaths } from "@nbfleet/agent";
import type { CertificateInfo, HealthCheck } from "@nbfleet/shared";
import { agentJson } from "@nbfleet/testkit/agent-process";
import { freePort } from "@nbfleet/testkit/ports";
import { type SharedPebble, sharedPebble } from "@nbfleet/testkit/shared-pebble";
import { type SourceAgentArtifact, sourceAgentArtifact } from "@nbfleet/testkit/source-agent-artifact";
import { tlsProbe } from "@nbfleet/testkit/tls-probe";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LinuxGuestLayout, linuxGuestLayout, renderLinuxBootstrap } from "../../src/bootstrap/linux.js";
import { stopSandboxGuest } from "../../src/bootstrap/sandbox-processes.js";

const NAME = "nb9.acme.test";
const sh = promisify(execFile);

let pebble: SharedPebble;
let root: string;
let artifact: SourceAgentArtifact;
let controller: http.Server;
let layout: LinuxGuestLayout | undefined;
let dataDir: string;

beforeAll(async () => {
  pebble = await sharedPebble(NAME);
  root = await mkdtemp(path.join(tmpdir(), "nbfleet-sandbox-acme-"));
  // As root the agent runs the notebook as the unprivileged `nbfleet` user, who must reach the data dir.
  await chmod(root, 0o755);
  dataDir = path.join(root, "agent");
  artifact = await sourceAgentArtifact();
  // Stands in for the controller: the artifact, and nothing for the agent's link to talk to.
  controller = http.createServer((req, res) =>
    req.url === "/v1/agent/artifact" ? res.end(artifact.bytes) : res.writeHead(404).end(),
  );
  await new Promise<void>((resolve) => controller.listen(0, "127.0.0.1", resolve));
});

afterAll(async () => {
  if (layout) await stopSandboxGuest(layout, dataPaths(dataDir).pidFile, { graceMs: 20_000 });
  await new Promise((resolve) => controller?.close(resolve));
  await rm(root, { recursive: true, force: true });
  if (artifact) await rm(path.dirname(artifact.file), { recursive: true, force: true });
});

/** GET /api trusting `ca` alone, as `NAME`: the status code, or the TLS error's code. */
async function verifiedApi(port: number, ca: string): Promise<number | string> {
  const probe = await tlsProbe({ port, servername: NAME, ca, timeoutMs: 5000 });
  return probe.status ?? probe.error ?? "no answer";
}

/** A failure with the agent's console (start-up errors, a crash) attached. */
async function explained<T>(step: Promise<T>): Promise<T> {
  try {
    return await step;
  } catch (error) {
    const console = layout ? await readFile(layout.consoleLog, "utf8").catch(() => "(none)") : "";
    throw new Error(`${(error as Error).message}\nagent console:\n${console.slice(-4000)}`);
  }
}

interface Status {
  notebook: { certificate: CertificateInfo | null };
  health: { checks: HealthCheck[] };
}

describe("sandbox bootstrap with certificate.mode acme → agent → pebble", () => {
  it("serves a certificate from pebble and reports its issuer, chain and days left", async () => {
    const port = await freePort();
    const installDir = path.join(root, "install");
    const salt = "5a17acde";
    const { port: controllerPort } = controller.address() as AddressInfo;
    const controllerUrl = `http://127.0.0.1:${controllerPort}`;
    const script = path.join(root, "bootstrap.sh");
    await writeFile(
      script,
      renderLinuxBootstrap({
        mode: "sandbox",
        controllerUrl,
        artifactUrl: `${controllerUrl}/v1/agent/artifact`,
        artifactSha256: artifact.sha256,
        bootstrapToken: "sandbox-acme-bootstrap-token",
        dataDir,
        installDir,
        notebookPort: port,
        bindIp: "127.0.0.1",
        node: process.execPath,
        passwordHash: `sha1:${salt}:${createHash("sha1").update(`pebble-e2e${salt}`).digest("hex")}`,
        certificate: {
          mode: "acme",
          hostname: NAME,
          directoryUrl: pebble.directoryUrl,
          email: "ops@example.com",
          caPem: pebble.caPem,
          challenge: "http-01",
          challengePort: pebble.httpPort,
        },
      }),
    );
    layout = linuxGuestLayout(installDir);
    const bootstrap = await sh("sh", [script]);
    expect(bootstrap.stdout).toContain("nbfleet-bootstrap: agent started");

    // What the bootstrap handed over: the CA beside the install, the flags into DIR/agent.json.
    expect(await readFile(layout.acmeCaFile, "utf8")).toBe(`${pebble.caPem.trimEnd()}\n`);
    expect((await stat(layout.acmeCaFile)).mode & 0o777).toBe(0o644);
    const launcher = await readFile(layout.launcher, "utf8");
    expect(launcher).toContain(`--acme-ca-file ${layout.acmeCaFile}`);
    const settings = await explained(
      waitFor("DIR/agent.json", async () =>
        readFile(dataPaths(dataDir).settingsFile, "utf8").then(JSON.parse, () => undefined),
      ),
    );
    expect(settings.certificate).toEqual({
      mode: "acme",
      hostname: NAME,
      directoryUrl: pebble.directoryUrl,
      email: "ops@example.com",
      caFile: layout.acmeCaFile,
      challenge: "http-01",
      challengePort: pebble.httpPort,
    });

    const status = () => agentJson<Status>(["status", "--data-dir", dataDir]);
    const served = await explained(
      waitFor(
        "the agent reporting a certificate from pebble",
        async () => {
          const s = await status().catch(() => undefined);
          return s?.notebook.certificate?.issuer?.kind === "acme" ? s : undefined;
        },
        150_000,
      ),
    );
    const certificate = served.notebook.certificate!;
    expect(certificate).toMatchObject({
      selfSigned: false,
      issuer: { kind: "acme", name: "127.0.0.1" },
      chainValid: true,
      chainProblem: null,
    });
    expect(certificate.subjectAltNames).toContain(`DNS:${NAME}`);
    // pebble's default lifetime is five years; daysLeft is counted from notAfter.
    expect(certificate.daysLeft).toBe(
      Math.floor((Date.parse(certificate.notAfter) - Date.now()) / 86_400_000),
    );
    expect(certificate.daysLeft).toBeGreaterThan(30);

    const rootPem = await pebble.rootPem();
    expect(
      await waitFor("the notebook answering, verified by pebble's root", async () => {
        const answer = await verifiedApi(port, rootPem);
        return answer === 200 ? answer : undefined;
      }),
    ).toBe(200);
    const tls = await waitFor("the tls check naming pebble", async () =>
      (await status()).health.checks.find(
        (c) => c.name === "tls" && c.status === "pass" && /^ACME/.test(c.message),
      ),
    );
    expect(tls.message).toMatch(/^ACME certificate from 127\.0\.0\.1 valid for \d+ more days$/);
  }, 180_000);
});

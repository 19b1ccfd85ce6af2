/**
 * Guests verify a controller on TLS: the controller serves HTTPS with its own certificate
 * (`tlsCert`/`tlsKey`), the bootstrap each VM receives carries the certificate's SHA-256, and
 * the real agent booted from that customData (through the emulator) connects — or, with a
 * fingerprint that does not match, refuses the controller and sends it nothing. A certificate
 * renewed with the same key is accepted by an agent that has seen the pinned one.
 */
import { existsSync } from "node:fs";
import { readFile, readdir, rm } from "node:fs/promises";
import path from "node:path";
import { type RunningEmulator, startEmulator } from "@nbfleet/azure-emulator";
import { type AgentArtifact, buildAgentArtifact, linuxGuestLayout } from "@nbfleet/scripts";
import type { VmView } from "@nbfleet/shared";
import { FAST_DURATIONS, emulatorProvider } from "@nbfleet/testkit/azure";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { renewWithSameKey, selfSignedPair } from "@nbfleet/testkit/test-ca";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultSettings } from "../../src/config/settings.js";
import { type NbfleetApp, buildServer, listen } from "../../src/server.js";
import { type GuestTrust, guestTrust, readTlsFiles } from "../../src/tls/files.js";

let root: string;
let emu: RunningEmulator;
let artifact: AgentArtifact;
let cert: string;
let key: string;

async function tlsController(
  name: string,
  trust: GuestTrust,
  options: { listen?: string; tlsCert?: string } = {},
): Promise<{ app: NbfleetApp; url: string }> {
  const provider = emulatorProvider(emu, { resourceGroup: name, artifact, controllerTrust: trust });
  const app = await buildServer(
    {
      ...defaultSettings(),
      dataDir: path.join(root, name),
      listen: options.listen ?? "127.0.0.1:0",
      logLevel: "silent",
      stateFlushMs: 20,
      tlsCert: options.tlsCert ?? cert,
      tlsKey: key,
    },
    { provider, artifact },
  );
  return { app, url: await listen(app) };
}

/** The agent's record of the pinned certificate's key, somewhere in the guest's data directory. */
async function learnedKey(vm: string): Promise<unknown> {
  const dir = guestDir(vm);
  const entries = await readdir(dir, { recursive: true });
  const file = entries.find((entry) => path.basename(entry) === "controller-key.json");
  return file ? JSON.parse(await readFile(path.join(dir, file), "utf8")) : null;
}

async function view(app: NbfleetApp, name: string): Promise<VmView> {
  const response = await app.inject({
    method: "GET",
    url: `/v1/vms/${name}`,
    headers: { authorization: `Bearer ${app.nbfleet.adminToken.token}` },
  });
  return response.json() as VmView;
}

function guestDir(vm: string): string {
  const found = emu.emulator.inventory().resources.find((r) => r.name === vm)?.guest?.dir;
  if (!found) throw new Error(`no guest for ${vm}`);
  return found;
}

beforeAll(async () => {
  root = makeDataDir("nbf-azure-tls-");
  ({ cert, key } = await selfSignedPair(root, "controller"));
  artifact = await buildAgentArtifact({ outDir: path.join(root, "artifact") });
  emu = await startEmulator({
    dataDir: path.join(root, "emulator"),
    guests: "sandbox",
    durations: FAST_DURATIONS,
  });
});

afterAll(async () => {
  await emu?.close();
  await rm(root, { recursive: true, force: true });
});

describe("a controller on TLS, verified by its guests", () => {
  it("an agent whose bootstrap pins the controller's certificate connects over wss, and again after the certificate is renewed with its key", async () => {
    const files = readTlsFiles({ tlsCert: cert, tlsKey: key, tlsCa: null })!;
    const trust = guestTrust(files)!;
    let { app, url } = await tlsController("pinned", trust);
    try {
      expect(url).toMatch(/^https:\/\//);
      const created = await app.inject({
        method: "POST",
        url: "/v1/vms",
        headers: { authorization: `Bearer ${app.nbfleet.adminToken.token}` },
        payload: { name: "pinok" },
      });
      expect(created.statusCode).toBe(201);
      await waitFor(
        "pinok's agent connected",
        async () => (await view(app, "pinok")).agent.status === "connected",
        180_000,
      );
      const script = await readFile(path.join(guestDir("pinok"), "bootstrap.sh"), "utf8");
      expect(script).toContain(`NBF_CONTROLLER_FINGERPRINT='${trust.fingerprint}'`);
      expect(script).toContain(`NBF_CONTROLLER_URL='${url}'`);

      await waitFor(
        "pinok's agent to record the pinned certificate's key",
        async () => {
          const record = await learnedKey("pinok");
          return (record as { keySha256?: string } | null)?.keySha256 === files.keySha256 && record;
        },
        30_000,
      );
      await app.close();
      const renewed = renewWithSameKey(key, root, "controller-renewed");
      const renewedFiles = readTlsFiles({ tlsCert: renewed, tlsKey: key, tlsCa: null })!;
      expect(renewedFiles.fingerprintSha256).not.toBe(files.fingerprintSha256);
      const restartedAt = new Date().toISOString();
      ({ app, url } = await tlsController("pinned", guestTrust(renewedFiles)!, {
        listen: new URL(url).host,
        tlsCert: renewed,
      }));
      await waitFor(
        "pinok's agent connected to the renewed certificate",
        async () => {
          const agent = (await view(app, "pinok")).agent;
          return agent.status === "connected" && (agent.connectedAt ?? "") > restartedAt;
        },
        60_000,
      );
      await app.inject({
        method: "DELETE",
        url: "/v1/vms/pinok",
        headers: { authorization: `Bearer ${app.nbfleet.adminToken.token}` },
      });
    } finally {
      await app.close();
    }
  });

  it("a bootstrap given a fingerprint that does not match refuses the controller before downloading", async () => {
    const wrong = Array.from({ length: 32 }, () => "AB").join(":");
    const { app } = await tlsController("mismatch", {
      fingerprint: wrong,
      certPem: await readFile(cert, "utf8"),
    });
    try {
      await app.inject({
        method: "POST",
        url: "/v1/vms",
        headers: { authorization: `Bearer ${app.nbfleet.adminToken.token}` },
        payload: { name: "pinbad" },
      });
      // The first TLS connection, the artifact's download, already checks the pin.
      const guest = await waitFor(
        "pinbad's bootstrap to fail",
        async () => {
          const status = emu.emulator.inventory().resources.find((r) => r.name === "pinbad")?.guest;
          return status?.state === "failed" && status;
        },
        180_000,
      );
      expect(guest.detail).toMatch(
        /refusing the controller at 127\.0\.0\.1:\d+: its certificate has SHA-256 [0-9A-F:]+, but (AB:){31}AB is pinned; nothing was sent to it/,
      );
      expect(existsSync(linuxGuestLayout(path.join(guest.dir!, "install")).current)).toBe(false);
      const vm = await view(app, "pinbad");
      expect(vm.agent.status).toBe("never_connected");
      await app.inject({
        method: "DELETE",
        url: "/v1/vms/pinbad",
        headers: { authorization: `Bearer ${app.nbfleet.adminToken.token}` },
      });
    } finally {
      await app.close();
    }
  });
});

/**
 * Guests verify a controller on TLS: the controller serves HTTPS with its own certificate
 * (`tlsCert`/`tlsKey`), the bootstrap each VM receives carries the certificate's SHA-256, and
 * the real agent booted from that customData (through the emulator) connects — or, with a
 * fingerprint that does not match, refuses the controller and sends it nothing. A certificate
 * renewed with the same key is accepted by an agent that has seen the pinned one, and a
 * controller.trust moves the agent onto a certificate with a new key.
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
  options: { listen?: string; tlsCert?: string; tlsKey?: string } = {},
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
      tlsKey: options.tlsKey ?? key,
    },
    { provider, artifact },
  );
  return { app, url: await listen(app) };
}

/** A file of the guest's data directory by its name ("" when there is none yet). */
async function guestFile(vm: string, name: string): Promise<string> {
  const dir = guestDir(vm);
  const entries = await readdir(dir, { recursive: true });
  const file = entries.find((entry) => path.basename(entry) === name);
  return file ? readFile(path.join(dir, file), "utf8") : "";
}

/** A JSON state file of the guest's agent (null when there is none yet). */
async function guestJson(vm: string, name: string): Promise<unknown> {
  const text = await guestFile(vm, name);
  return text ? JSON.parse(text) : null;
}

/** A controller.trust over the whole fleet, run to its end through the API; it must succeed. */
async function trustOperation(app: NbfleetApp, certFiles: string[]): Promise<void> {
  const headers = { authorization: `Bearer ${app.nbfleet.adminToken.token}` };
  const created = await app.inject({
    method: "POST",
    url: "/v1/operations",
    headers,
    payload: {
      action: "controller.trust",
      selector: { all: true },
      params: { certificates: await Promise.all(certFiles.map((file) => readFile(file, "utf8"))) },
    },
  });
  expect(created.statusCode).toBe(201);
  const id = created.json().operation.id as string;
  const final = await waitFor(
    `operation ${id} to end`,
    async () => {
      const operation = (await app.inject({ method: "GET", url: `/v1/operations/${id}`, headers })).json();
      return operation.state !== "running" && operation.state !== "pending" && operation;
    },
    60_000,
  );
  expect(final).toMatchObject({ state: "succeeded", counts: { succeeded: final.total } });
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
          const record = await guestJson("pinok", "controller-key.json");
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

  it("controller.trust moves a pinned agent onto a certificate with a new key, and retiring the old one locks it out", async () => {
    const files = readTlsFiles({ tlsCert: cert, tlsKey: key, tlsCa: null })!;
    const next = await selfSignedPair(root, "controller-next");
    const nextFiles = readTlsFiles({ tlsCert: next.cert, tlsKey: next.key, tlsCa: null })!;
    expect(nextFiles.keySha256).not.toBe(files.keySha256);
    let { app, url } = await tlsController("moving", guestTrust(files)!);
    const port = new URL(url).host;
    /** The controller stopped and started on the same port with another pair. */
    const restartOn = async (pair: { cert: string; key: string }, trust: GuestTrust) => {
      await app.close();
      const at = new Date().toISOString();
      ({ app, url } = await tlsController("moving", trust, {
        listen: port,
        tlsCert: pair.cert,
        tlsKey: pair.key,
      }));
      return at;
    };
    const connectedSince = (since: string, vm = "mover") =>
      waitFor(
        `${vm}'s agent connected`,
        async () => {
          const agent = (await view(app, vm)).agent;
          return agent.status === "connected" && (agent.connectedAt ?? "") > since;
        },
        180_000,
      );
    const create = async (name: string) => {
      const created = await app.inject({
        method: "POST",
        url: "/v1/vms",
        headers: { authorization: `Bearer ${app.nbfleet.adminToken.token}` },
        payload: { name },
      });
      expect(created.statusCode).toBe(201);
      await connectedSince("", name);
    };
    try {
      await create("mover");

      // 1: every agent trusts the served certificate and the next one.
      await trustOperation(app, [cert, next.cert]);
      const both = {
        pins: [
          { certificateSha256: files.fingerprintSha256, keySha256: files.keySha256 },
          { certificateSha256: nextFiles.fingerprintSha256, keySha256: nextFiles.keySha256 },
        ],
      };
      expect(await guestJson("mover", "controller-trust.json")).toMatchObject(both);
      // A machine created after the operation (its bootstrap pins the old certificate only) is
      // sent the set in effect when it says hello.
      await create("latecomer");
      await waitFor(
        "latecomer's agent to store the set in effect",
        async () =>
          JSON.stringify(await guestJson("latecomer", "controller-trust.json")).includes(nextFiles.keySha256),
        30_000,
      );
      expect(await guestJson("latecomer", "controller-trust.json")).toMatchObject(both);
      // 2: the controller moves to the new key; the agents follow.
      const movedAt = await restartOn(next, guestTrust(nextFiles)!);
      await connectedSince(movedAt);
      await connectedSince(movedAt, "latecomer");
      // 3: the old certificate is retired.
      await trustOperation(app, [next.cert]);
      expect((await guestJson("mover", "controller-trust.json")) as { pins: unknown[] }).toMatchObject({
        pins: [{ certificateSha256: nextFiles.fingerprintSha256 }],
      });
      // Whoever serves the old certificate now (its key leaked, say) gets nothing.
      await restartOn({ cert, key }, guestTrust(files)!);
      await waitFor(
        "mover's agent to refuse the retired certificate",
        async () => (await guestFile("mover", "agent.log")).includes("replaced by controller.trust"),
        60_000,
      );
      expect((await view(app, "mover")).agent.status).not.toBe("connected");
      await connectedSince(await restartOn(next, guestTrust(nextFiles)!));
      for (const name of ["mover", "latecomer"])
        await app.inject({
          method: "DELETE",
          url: `/v1/vms/${name}`,
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

import { execFile } from "node:child_process";
import { X509Certificate, createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from "node:fs/promises";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { generateReleaseKeyPair, signArtifact } from "@nbfleet/shared/artifact-signature";
import { publicKeySha256 } from "@nbfleet/shared/certificate-pin";
import { renewWithSameKey } from "@nbfleet/testkit/test-ca";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AgentError } from "../errors.js";
import { formatFingerprint } from "../tls/fingerprint.js";
import { type CertificatePair, generateSelfSigned } from "../tls/generate.js";
import type { ArtifactSource } from "./download.js";
import { type UpgradeParams, Upgrader } from "./upgrader.js";

const run = promisify(execFile);
const FROM = "1.0.0";
const TO = "1.1.0";

/** How the test server answers the artifact download. */
type Serve = "whole" | "truncated" | "oversize-chunked" | "hang" | "reset-once";

let dir: string;
let install: string;
let keys: { privateKeyPem: string; publicKeyPem: string };
let tls: CertificatePair;
let server: https.Server;
let serve: Serve = "whole";
let served: Record<string, Buffer> = {};
let requests: string[] = [];
let source: ArtifactSource;
let good: Buffer;
let mislabelled: Buffer;

async function artifact(version: string, manifestVersion = version): Promise<Buffer> {
  const content = await mkdtemp(path.join(dir, "content-"));
  await writeFile(
    path.join(content, "manifest.json"),
    JSON.stringify({ name: "nbfleet-agent", version: manifestVersion, entry: "nbfleet-agent.mjs" }),
  );
  await writeFile(path.join(content, "nbfleet-agent.mjs"), `console.log(${JSON.stringify(version)});\n`);
  const file = `${content}.tar.gz`;
  await run("tar", ["-czf", file, "-C", content, "manifest.json", "nbfleet-agent.mjs"]);
  return readFile(file);
}

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

function params(bytes: Buffer, overrides: Partial<UpgradeParams> = {}): UpgradeParams {
  const version = overrides.version ?? TO;
  const sum = overrides.sha256 ?? sha256(bytes);
  return {
    version,
    sha256: sum,
    signature: signArtifact(keys.privateKeyPem, version, sum),
    bytes: bytes.length,
    timeoutSec: 60,
    ...overrides,
  };
}

function upgrader(overrides: Partial<ConstructorParameters<typeof Upgrader>[0]> = {}): Upgrader {
  return new Upgrader({
    installDir: install,
    releaseKeyFile: path.join(install, "release-key.pub"),
    currentVersion: FROM,
    source: () => source,
    downloadTimeoutMs: 5000,
    ...overrides,
  });
}

async function refusal(promise: Promise<unknown>): Promise<AgentError> {
  const error = await promise.then(
    () => {
      throw new Error("the upgrade was not refused");
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AgentError);
  return error as AgentError;
}

/** Nothing was unpacked or switched: `current` as before, no `previous`, no upgrade.json. */
async function expectNothingSwitched(): Promise<void> {
  expect(await readlink(path.join(install, "current"))).toBe(`versions/${FROM}`);
  await expect(readlink(path.join(install, "previous"))).rejects.toThrow(/ENOENT/);
  await expect(stat(path.join(install, "upgrade.json"))).rejects.toThrow(/ENOENT/);
  expect(await readdir(path.join(install, "versions"))).toEqual([FROM]);
  expect(await readdir(path.join(install, "downloads")).catch(() => [])).toEqual([]);
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-upgrader-"));
  keys = generateReleaseKeyPair();
  tls = await generateSelfSigned();
  good = await artifact(TO);
  mislabelled = await artifact(TO, "9.9.9");
  server = https.createServer({ cert: tls.certPem, key: tls.keyPem }, (request, response) => {
    requests.push(request.url ?? "");
    const match = /^\/v1\/agent\/artifacts\/([^/]+)\/file$/.exec(request.url ?? "");
    const body = match ? served[decodeURIComponent(match[1]!)] : undefined;
    if (!body) {
      response.writeHead(404).end();
      return;
    }
    if (serve === "hang") return;
    if (serve === "reset-once") {
      serve = "whole";
      request.socket.destroy();
      return;
    }
    if (serve === "truncated") {
      response.writeHead(200, { "content-length": String(body.length) });
      response.write(body.subarray(0, Math.floor(body.length / 2)), () => response.destroy());
      return;
    }
    if (serve === "oversize-chunked") {
      response.writeHead(200);
      response.end(Buffer.concat([body, Buffer.alloc(1024, 1)]));
      return;
    }
    response.writeHead(200, { "content-length": String(body.length) }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  source = {
    url: `wss://127.0.0.1:${port}/v1/agent/connect`,
    trust: { fingerprintSha256: formatFingerprint(new X509Certificate(tls.certPem).fingerprint256) },
  };
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  install = await mkdtemp(path.join(dir, "install-"));
  await mkdir(path.join(install, "versions", FROM), { recursive: true });
  await writeFile(path.join(install, "versions", FROM, "nbfleet-agent.mjs"), "// the running one\n");
  await symlink(`versions/${FROM}`, path.join(install, "current"));
  await writeFile(path.join(install, "release-key.pub"), keys.publicKeyPem);
  serve = "whole";
  served = { [TO]: good };
  requests = [];
});

describe("agent.upgrade on the agent", () => {
  it("downloads, verifies, unpacks beside the running version and switches current and previous", async () => {
    const up = upgrader({ now: () => Date.parse("2026-12-04T17:00:00Z") });
    const said: string[] = [];
    const answer = await up.upgrade("cmd-1", params(good), (m) => said.push(m));
    expect(answer).toEqual({ from: FROM, to: TO });
    expect(await readlink(path.join(install, "current"))).toBe(`versions/${TO}`);
    expect(await readlink(path.join(install, "previous"))).toBe(`versions/${FROM}`);
    expect(await readFile(path.join(install, "current", "nbfleet-agent.mjs"), "utf8")).toContain(TO);
    const pending = JSON.parse(await readFile(path.join(install, "upgrade.json"), "utf8"));
    expect(pending).toEqual({
      commandId: "cmd-1",
      from: FROM,
      to: TO,
      fromDir: `versions/${FROM}`,
      toDir: `versions/${TO}`,
      startedAt: "2026-12-04T17:00:00.000Z",
      deadline: "2026-12-04T17:01:00.000Z",
      deadlineUnix: Date.parse("2026-12-04T17:01:00Z") / 1000,
    });
    expect((await stat(path.join(install, "upgrade.json"))).mode & 0o777).toBe(0o600);
    expect(await readdir(path.join(install, "downloads"))).toEqual([]);
    expect(requests).toEqual([`/v1/agent/artifacts/${TO}/file`]);
    await expect(up.switched).resolves.toMatchObject({ from: FROM, to: TO });
    expect(said.join("\n")).toMatch(/verified/);
  });

  it("answers alreadyCurrent for its own version without downloading anything", async () => {
    const answer = await upgrader().upgrade("cmd-2", params(good, { version: FROM }), () => {});
    expect(answer).toEqual({ version: FROM, alreadyCurrent: true });
    expect(requests).toEqual([]);
    await expectNothingSwitched();
  });

  it("refuses bytes whose sha256 is not the one announced (and signed)", async () => {
    const wrong = "0".repeat(64);
    const error = await refusal(upgrader().upgrade("c", params(good, { sha256: wrong }), () => {}));
    expect(error.code).toBe("NBF_ARTIFACT_REFUSED");
    expect(error.message).toContain(
      `sha256 check failed: expected ${wrong}, the download has ${sha256(good)}`,
    );
    await expectNothingSwitched();
  });

  it("refuses a signature made for another version, before downloading", async () => {
    const sum = sha256(good);
    const error = await refusal(
      upgrader().upgrade(
        "c",
        params(good, { signature: signArtifact(keys.privateKeyPem, "1.0.9", sum) }),
        () => {},
      ),
    );
    expect(error.code).toBe("NBF_ARTIFACT_REFUSED");
    expect(error.message).toMatch(/signature check failed: .* does not verify with the release key/);
    expect(requests).toEqual([]);
    await expectNothingSwitched();
  });

  it("refuses an artifact signed with another key", async () => {
    const other = generateReleaseKeyPair();
    const sum = sha256(good);
    const error = await refusal(
      upgrader().upgrade(
        "c",
        params(good, { signature: signArtifact(other.privateKeyPem, TO, sum) }),
        () => {},
      ),
    );
    expect(error.code).toBe("NBF_ARTIFACT_REFUSED");
    expect(error.message).toContain("signature check failed");
    expect(requests).toEqual([]);
    await expectNothingSwitched();
  });

  it("refuses when the release key file is missing, naming it", async () => {
    await rm(path.join(install, "release-key.pub"));
    const error = await refusal(upgrader().upgrade("c", params(good), () => {}));
    expect(error.code).toBe("NBF_ARTIFACT_REFUSED");
    expect(error.message).toContain(`cannot read the release key ${path.join(install, "release-key.pub")}`);
    await expectNothingSwitched();
  });

  it("refuses a download larger than announced (content-length), and one that streams past it", async () => {
    const small = params(good, { bytes: good.length - 10 });
    const announced = await refusal(upgrader().upgrade("c", small, () => {}));
    expect(announced.code).toBe("NBF_ARTIFACT_REFUSED");
    expect(announced.message).toContain(
      `announces ${good.length} bytes, more than the ${good.length - 10} expected`,
    );
    await expectNothingSwitched();

    serve = "oversize-chunked";
    const streamed = await refusal(upgrader().upgrade("c", params(good), () => {}));
    expect(streamed.code).toBe("NBF_ARTIFACT_REFUSED");
    expect(streamed.message).toContain(`more than the ${good.length} bytes expected arrived`);
    await expectNothingSwitched();
  });

  it("tries a download cut short again until its deadline, then refuses it", async () => {
    serve = "truncated";
    const said: string[] = [];
    const error = await refusal(
      upgrader({ downloadTimeoutMs: 1500 }).upgrade("c", params(good), (m) => said.push(m)),
    );
    expect(error.code).toBe("NBF_ARTIFACT_REFUSED");
    expect(error.message).toMatch(
      /(cut short|broke off|not downloaded within).*\(gave up after \d+ attempts\)/,
    );
    expect(requests.length).toBeGreaterThan(1);
    expect(said.join("\n")).toMatch(/the download failed .*; trying again in 1 s/);
    await expectNothingSwitched();
  });

  it("downloads again after a connection reset (a controller restarting) and switches", async () => {
    serve = "reset-once";
    const said: string[] = [];
    const answer = await upgrader().upgrade("c", params(good), (m) => said.push(m));
    expect(answer).toEqual({ from: FROM, to: TO });
    expect(requests).toEqual([`/v1/agent/artifacts/${TO}/file`, `/v1/agent/artifacts/${TO}/file`]);
    expect(said.join("\n")).toContain("trying again");
    expect(await readlink(path.join(install, "current"))).toBe(`versions/${TO}`);
  });

  it("gives up on a download that does not finish by its deadline", async () => {
    serve = "hang";
    const error = await refusal(upgrader({ downloadTimeoutMs: 500 }).upgrade("c", params(good), () => {}));
    expect(error.code).toBe("NBF_ARTIFACT_REFUSED");
    expect(error.message).toContain("not downloaded within");
    await expectNothingSwitched();
  });

  it("refuses a signed artifact whose manifest names another version, leaving no directory", async () => {
    served = { [TO]: mislabelled };
    const error = await refusal(upgrader().upgrade("c", params(mislabelled), () => {}));
    expect(error.code).toBe("NBF_ARTIFACT_REFUSED");
    expect(error.message).toContain('its manifest says version "9.9.9", not 1.1.0');
    await expectNothingSwitched();
  });

  it("refuses a controller whose certificate is not the pinned one, sending nothing", async () => {
    const other = await generateSelfSigned();
    const pinnedElsewhere = {
      ...source,
      trust: { fingerprintSha256: formatFingerprint(new X509Certificate(other.certPem).fingerprint256) },
    };
    const error = await refusal(
      upgrader({ source: () => pinnedElsewhere }).upgrade("c", params(good), () => {}),
    );
    expect(error.code).toBe("NBF_ARTIFACT_REFUSED");
    expect(error.message).toContain("is pinned; nothing was sent to it");
    expect(requests).toEqual([]);
    await expectNothingSwitched();
  });

  it("downloads from a controller whose certificate was renewed with the key the link learned", async () => {
    // The link pinned an older certificate of the same key and learned the key from it.
    const keyFile = path.join(dir, "controller-key.pem");
    await writeFile(keyFile, tls.keyPem, { mode: 0o600 });
    const older = new X509Certificate(await readFile(renewWithSameKey(keyFile, dir, "older"), "utf8"));
    const learned = { keySha256: publicKeySha256(older), learned: () => {} };
    const pinnedOlder = (key: typeof learned | undefined) => ({
      ...source,
      trust: { fingerprintSha256: formatFingerprint(older.fingerprint256), ...(key ? { key } : {}) },
    });
    const refused = await refusal(
      upgrader({ source: () => pinnedOlder(undefined) }).upgrade("c", params(good), () => {}),
    );
    expect(refused.message).toContain("is pinned; nothing was sent to it");
    expect(requests).toEqual([]);
    const result = await upgrader({ source: () => pinnedOlder(learned) }).upgrade(
      "c",
      params(good),
      () => {},
    );
    expect(result).toEqual({ from: FROM, to: TO });
    expect(requests).toHaveLength(1);
  });

  it("refuses a second upgrade while one is not confirmed, and says when it is not connected", async () => {
    await upgrader().upgrade("cmd-1", params(good), () => {});
    const next = await artifact("1.2.0");
    served["1.2.0"] = next;
    const pending = await refusal(
      upgrader({ currentVersion: TO }).upgrade("cmd-2", params(next, { version: "1.2.0" }), () => {}),
    );
    expect(pending.code).toBe("NBF_UPGRADE_UNAVAILABLE");
    expect(pending.message).toContain(`from ${FROM} to ${TO} is not confirmed yet`);
    await rm(path.join(install, "upgrade.json"));
    const offline = await refusal(
      upgrader({ currentVersion: TO, source: () => null, downloadTimeoutMs: 300 }).upgrade(
        "cmd-3",
        params(next, { version: "1.2.0" }),
        () => {},
      ),
    );
    expect(offline.code).toBe("NBF_UPGRADE_UNAVAILABLE");
    expect(offline.message).toContain("not connected");
  });
});

/**
 * The artifact catalog's API over real HTTP on both store dialects: real agent artifacts built
 * from this checkout, real Ed25519 signatures, hostile uploads refused with nothing stored.
 */
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type AgentArtifact, buildAgentArtifact } from "@nbfleet/scripts";
import { AGENT_ARTIFACTS_PATH, AGENT_VERSION, agentArtifactFilePath } from "@nbfleet/shared";
import { verifyArtifact } from "@nbfleet/shared/artifact-signature";
import { fakeArtifact, tarEntry, tarGz } from "@nbfleet/testkit/artifact-tarball";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { releaseKeyPath } from "../../artifacts/release-key.js";
import { neverConnectedStatus } from "../../store/vms-repo.js";

let work: string;
let builtIn: AgentArtifact;
let next: AgentArtifact;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "nbf-artifacts-api-"));
  builtIn = await buildAgentArtifact({ outDir: path.join(work, "built-in") });
  next = await buildAgentArtifact({ outDir: path.join(work, "next"), version: "1.1.0" });
}, 120_000);
afterAll(() => rm(work, { recursive: true, force: true }));

// biome-ignore lint/suspicious/noExplicitAny: JSON bodies, read by the assertions
type Json = any;
const json = (res: Response): Promise<Json> => res.json();
const sha = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

describe.each(STORE_DIALECTS)("agent artifacts API (%s)", (dialect) => {
  let controller: TestController;
  let viewer: string;
  let operator: string;

  beforeAll(async () => {
    controller = await startTestController({
      settings: await freshStoreLocation(dialect),
      artifact: builtIn,
    });
    for (const role of ["viewer", "operator"] as const) {
      const res = await http("POST", "/v1/tokens", controller.adminToken, {
        body: JSON.stringify({ name: role, role }),
        type: "application/json",
      });
      if (role === "viewer") viewer = (await json(res)).token;
      else operator = (await json(res)).token;
    }
  }, 60_000);
  afterAll(() => controller?.close());

  async function http(
    method: string,
    url: string,
    token: string | null,
    options: { body?: Buffer | string | ReadableStream; type?: string; stream?: boolean } = {},
  ): Promise<Response> {
    return fetch(`${controller.url}${url}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(options.type ? { "content-type": options.type } : {}),
      },
      ...(options.body !== undefined ? { body: options.body } : {}),
      ...(options.stream ? { duplex: "half" } : {}),
    } as RequestInit);
  }
  const publish = (bytes: Buffer, token = controller.adminToken) =>
    http("POST", AGENT_ARTIFACTS_PATH, token, { body: bytes, type: "application/gzip" });
  const list = async (token = viewer) => json(await http("GET", AGENT_ARTIFACTS_PATH, token));
  /** What is stored: the versions' rows (cluster-wide) and this replica's local copies. */
  const storedDirs = async () => ({
    rows: (
      await controller.app.nbfleet.store.db
        .selectFrom("agent_artifacts")
        .select(["version", "sha256"])
        .orderBy("version")
        .execute()
    ).map((row) => `${row.version} ${row.sha256}`),
    files: (await readdir(path.join(controller.dataDir, "artifacts"))).sort(),
  });

  it("registers the built-in artifact at start, signed by the 0600 release key", async () => {
    // <data-dir>/release-key.pem, or the cluster's key file the testkit gives replicas of one database.
    const keyFile = releaseKeyPath(controller.app.nbfleet.settings);
    expect(keyFile).toBe(
      dialect === "sqlite"
        ? path.join(controller.dataDir, "release-key.pem")
        : controller.app.nbfleet.settings.releaseKeyFile,
    );
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    const body = await list();
    expect(body.releasePublicKey).toBe(controller.app.nbfleet.artifacts.releasePublicKeyPem());
    expect(body.releasePublicKey).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(body.items).toEqual([
      {
        version: AGENT_VERSION,
        bytes: builtIn.bytes,
        sha256: builtIn.sha256,
        signature: expect.any(String),
        publishedAt: expect.any(String),
        agents: 0,
        newest: true,
      },
    ]);
    expect(
      verifyArtifact(body.releasePublicKey, AGENT_VERSION, builtIn.sha256, body.items[0].signature),
    ).toBe(true);
    expect(controller.app.nbfleet.artifacts.builtIn()).toMatchObject({
      version: AGENT_VERSION,
      sha256: builtIn.sha256,
    });
    // What bootstraps fetch today is still served.
    const legacy = await fetch(`${controller.url}/v1/agent/artifact`);
    expect(legacy.headers.get("x-nbfleet-sha256")).toBe(builtIn.sha256);
    await legacy.body?.cancel();
  });

  it("publishes a real artifact (admin), lists it newest, and serves its exact bytes publicly", async () => {
    const bytes = await readFile(next.file);
    const res = await publish(bytes);
    expect(res.status).toBe(201);
    const record = await json(res);
    expect(record).toMatchObject({
      version: "1.1.0",
      sha256: sha(bytes),
      bytes: bytes.length,
      created: true,
      newest: true,
    });
    const { items, releasePublicKey } = await list();
    expect(items.map((i: { version: string; newest: boolean }) => [i.version, i.newest])).toEqual([
      ["1.1.0", true],
      [AGENT_VERSION, false],
    ]);
    expect(verifyArtifact(releasePublicKey, "1.1.0", sha(bytes), record.signature)).toBe(true);

    const download = await fetch(`${controller.url}${agentArtifactFilePath("1.1.0")}`);
    expect(download.status).toBe(200);
    expect(download.headers.get("content-type")).toBe("application/gzip");
    expect(download.headers.get("content-length")).toBe(String(bytes.length));
    expect(download.headers.get("x-nbfleet-sha256")).toBe(sha(bytes));
    expect(download.headers.get("x-nbfleet-signature")).toBe(record.signature);
    expect(Buffer.from(await download.arrayBuffer())).toEqual(bytes);
    // Served from this replica's copy, named by its sha256.
    expect((await storedDirs()).files).toContain(`${sha(bytes)}.tar.gz`);

    const again = await publish(bytes);
    expect(again.status).toBe(200);
    expect(await json(again)).toMatchObject({
      version: "1.1.0",
      signature: record.signature,
      created: false,
    });
  });

  it("counts the machines whose agent reports each version", async () => {
    const vms = await seedVms(controller.app, { count: 3, prefix: `count-${dialect}` });
    const now = new Date().toISOString();
    vms.forEach((vm, i) => {
      const version = i < 2 ? "1.1.0" : AGENT_VERSION;
      controller.app.nbfleet.store.writer.putStatus({
        ...neverConnectedStatus(vm.name, now),
        agent_info: JSON.stringify({ version, hostname: vm.name, os: "linux", arch: "x64" }),
      });
    });
    await controller.app.nbfleet.store.writer.flush();
    const { items } = await list();
    expect(items.map((i: { version: string; agents: number }) => [i.version, i.agents])).toEqual([
      ["1.1.0", 2],
      [AGENT_VERSION, 1],
    ]);
  });

  it("lets a viewer list but not publish; an operator cannot publish either", async () => {
    const before = await storedDirs();
    for (const token of [viewer, operator]) {
      const res = await publish(fakeArtifact("8.0.0"), token);
      expect(res.status).toBe(403);
      expect((await json(res)).error.code).toBe("NBF_FORBIDDEN");
    }
    const anonymous = await publish(fakeArtifact("8.0.0"), null as unknown as string);
    expect(anonymous.status).toBe(401);
    expect((await http("GET", AGENT_ARTIFACTS_PATH, null)).status).toBe(401);
    expect(await storedDirs()).toEqual(before);
  });

  describe("hostile uploads: refused with a reason, nothing stored", () => {
    const bundle = tarEntry("nbfleet-agent.mjs", { body: "export {}\n" });
    const manifest = (version = "9.0.0", name = "nbfleet-agent") =>
      tarEntry("manifest.json", { body: JSON.stringify({ name, version }) });
    const whole = tarGz(manifest(), bundle, tarEntry("filler", { body: Buffer.alloc(50_000, 3) }));
    const cases: Array<[string, Buffer, number, string, RegExp]> = [
      [
        "a truncated gzip",
        whole.subarray(0, whole.length - 40),
        400,
        "NBF_ARTIFACT_INVALID",
        /gzip stream ended early/,
      ],
      [
        "a path with ..",
        tarGz(manifest(), bundle, tarEntry("../outside")),
        400,
        "NBF_ARTIFACT_INVALID",
        /"\.\.\/outside" climbs out/,
      ],
      [
        "an absolute path",
        tarGz(manifest(), bundle, tarEntry("/tmp/evil")),
        400,
        "NBF_ARTIFACT_INVALID",
        /"\/tmp\/evil" has an absolute path/,
      ],
      [
        "a symlink",
        tarGz(manifest(), bundle, tarEntry("node_modules", { type: "2", link: "/" })),
        400,
        "NBF_ARTIFACT_INVALID",
        /"node_modules" is a symbolic link/,
      ],
      [
        "a wrong manifest",
        tarGz(manifest("9.0.0", "not-the-agent"), bundle),
        400,
        "NBF_ARTIFACT_INVALID",
        /names "not-the-agent"/,
      ],
      [
        "a manifest version that is no version",
        tarGz(manifest("../9"), bundle),
        400,
        "NBF_ARTIFACT_INVALID",
        /version "\.\.\/9"/,
      ],
      [
        "a stored version with other bytes",
        fakeArtifact("1.1.0"),
        409,
        "NBF_ARTIFACT_VERSION_EXISTS",
        /1\.1\.0 is already published with other bytes/,
      ],
    ];
    it.each(cases)("%s", async (_name, bytes, status, code, message) => {
      const before = await storedDirs();
      const listed = (await list()).items;
      const res = await publish(bytes);
      const body = await json(res);
      expect(res.status).toBe(status);
      expect(body.error.code).toBe(code);
      expect(body.error.message).toMatch(message);
      expect(await storedDirs()).toEqual(before);
      expect((await list()).items).toEqual(listed);
    });

    it("a body that is not application/gzip", async () => {
      const res = await http("POST", AGENT_ARTIFACTS_PATH, controller.adminToken, {
        body: JSON.stringify({ version: "9.9.9" }),
        type: "application/json",
      });
      expect(res.status).toBe(400);
      expect((await json(res)).error.message).toMatch(
        /Content-Type: application\/gzip \(got application\/json\)/,
      );
    });

    it("an oversize body, declared or streamed", async () => {
      const before = await storedDirs();
      const limit = 64 * 1024 * 1024;
      const declared = await publish(Buffer.alloc(limit + 1));
      expect(declared.status).toBe(413);
      expect((await json(declared)).error).toMatchObject({ code: "NBF_BODY_TOO_LARGE", details: { limit } });
      // Chunked: no length up front, cut off while it streams.
      let sent = 0;
      const chunk = Buffer.alloc(1024 * 1024, 1);
      const stream = new ReadableStream({
        pull(controller) {
          if (sent > limit) return controller.close();
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const streamed = await http("POST", AGENT_ARTIFACTS_PATH, controller.adminToken, {
        body: stream,
        type: "application/gzip",
        stream: true,
      }).catch((error: unknown) => error as Error);
      // The controller may answer and close before the client finished sending.
      if (streamed instanceof Response) {
        expect(streamed.status).toBe(413);
        expect((await json(streamed)).error.code).toBe("NBF_BODY_TOO_LARGE");
      }
      expect(await storedDirs()).toEqual(before);
    }, 60_000);
  });

  it("documents the routes in OpenAPI under the agent tag, the upload as application/gzip", async () => {
    const docs = await json(await http("GET", "/docs/json", null));
    const collection = docs.paths[AGENT_ARTIFACTS_PATH];
    expect(collection.get.tags).toEqual(["agent"]);
    expect(collection.post.tags).toEqual(["agent"]);
    expect(collection.post.requestBody.content["application/gzip"].schema).toMatchObject({
      format: "binary",
    });
    expect(docs.paths[`${AGENT_ARTIFACTS_PATH}/{version}/file`].get.tags).toEqual(["agent"]);
  });

  it("answers an unknown version 404 and a path-like one 400, serving nothing", async () => {
    const missing = await fetch(`${controller.url}${agentArtifactFilePath("9.9.9")}`);
    expect(missing.status).toBe(404);
    expect((await json(missing)).error).toMatchObject({
      code: "NBF_ARTIFACT_NOT_FOUND",
      details: { version: "9.9.9" },
    });
    const climbing = await fetch(`${controller.url}${AGENT_ARTIFACTS_PATH}/..%2F..%2Frelease-key.pem/file`);
    expect(climbing.status).toBe(400);
    expect((await json(climbing)).error.code).toBe("NBF_INVALID_PARAMS");
  });
});

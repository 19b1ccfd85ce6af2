import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { CloseCode } from "@nbfleet/shared";
import { FakeController } from "@nbfleet/testkit/fake-controller";
import { FakeCore } from "@nbfleet/testkit/fake-core";
import { type LinkHarness, startLink } from "@nbfleet/testkit/link-harness";
import { afterEach, describe, expect, it } from "vitest";

const TOKEN = "nbfb_one-time-bootstrap-token-0123456789";

let fake: FakeController;
let harness: LinkHarness | undefined;

afterEach(async () => {
  await harness?.stop();
  harness = undefined;
  await fake?.close();
});

describe("ControllerLink: bootstrap token and credential", () => {
  it("stores the credential from the welcome 0600 and presents it, not the token, next time", async () => {
    fake = await FakeController.start({ bootstrapTokens: [TOKEN] });
    harness = startLink({ url: fake.url, core: new FakeCore(), bootstrapToken: TOKEN });
    await fake.waitForWelcomed(1);
    await harness.log.waitFor(/stored the agent credential/);
    const [credential] = fake.issuedCredentials;
    expect(fake.connections[0]!.bearer).toBe(TOKEN);
    expect((await readFile(harness.credentialFile, "utf8")).trim()).toBe(credential);
    expect((await stat(harness.credentialFile)).mode & 0o777).toBe(0o600);

    fake.dropCurrent();
    const second = await fake.waitForWelcomed(2);
    expect(second.bearer).toBe(credential);
    expect(second.kind).toBe("credential");
    expect(fake.connections.slice(1).every((c) => c.bearer !== TOKEN)).toBe(true);
    expect(fake.issuedCredentials).toHaveLength(1);
    // Neither secret ever reaches the log.
    expect(harness.log.text()).not.toContain(TOKEN);
    expect(harness.log.text()).not.toContain(credential);
  });

  it("uses a stored credential from the start, and the bootstrap token only once it was refused", async () => {
    fake = await FakeController.start({
      credentials: ["nbfa_valid-credential-0123456789"],
      bootstrapTokens: [TOKEN],
    });
    const dir = await mkdtemp(path.join(tmpdir(), "nbf-cred-"));
    const credentialFile = path.join(dir, "controller-credential");
    await writeFile(credentialFile, "nbfa_revoked-credential-0123456789\n", { mode: 0o600 });
    harness = startLink({ url: fake.url, core: new FakeCore(), bootstrapToken: TOKEN, credentialFile });
    const welcomed = await fake.waitForWelcomed(1);
    expect(fake.connections[0]!.bearer).toBe("nbfa_revoked-credential-0123456789");
    expect((await fake.waitForClosed(fake.connections[0]!)).closeCode).toBe(CloseCode.unauthorized);
    expect(welcomed.bearer).toBe(TOKEN);
    await harness.log.waitFor(/stored the agent credential/);
    expect((await readFile(credentialFile, "utf8")).trim()).toBe(fake.issuedCredentials[0]);
    await rm(dir, { recursive: true, force: true });
  });

  it("says clearly that a spent bootstrap token was refused and keeps retrying, up to the slow cap", async () => {
    fake = await FakeController.start({ credentials: ["nbfa_someone-elses-credential-012345"] });
    harness = startLink({
      url: fake.url,
      core: new FakeCore(),
      bootstrapToken: TOKEN,
      timing: { initialBackoffMs: 20, maxBackoffMs: 40, slowBackoffMs: 5000 },
      random: () => 1,
    });
    const line = await harness.log.waitFor(/refused the bootstrap token/);
    expect(line.level).toBe("error");
    expect(line.message).toContain("nbfleet vm bootstrap-token");
    expect(line.message).toContain("--bootstrap-token-file");
    await fake.waitFor(() => fake.connections.length >= 4, "four refused dials");
    const waits = harness.statuses.flatMap((s) => (s.status.state === "waiting" ? [s.status] : []));
    // The ceiling grows past maxBackoffMs (40) because the refusal needs an operator: 20, 40, 80, ...
    expect(waits.map((w) => w.retryInMs).slice(0, 3)).toEqual([20, 40, 80]);
    expect(waits.every((w) => w.pace === "patient")).toBe(true);
    expect(fake.connections.every((c) => c.welcomedAt === null)).toBe(true);
    // The same refusal is logged once, not on every dial.
    expect(harness.log.lines.filter((l) => /refused the bootstrap token/.test(l.message))).toHaveLength(1);
  });

  it("refuses to start without a stored credential or a bootstrap token", async () => {
    fake = await FakeController.start();
    harness = startLink({ url: fake.url, core: new FakeCore() });
    await expect(harness.done).rejects.toThrow(/no controller credential .* and no bootstrap token/);
    expect(fake.connections).toEqual([]);
  });
});

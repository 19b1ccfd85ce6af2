import { hashSecret, newAgentCredential } from "@nbfleet/controller";
import type { AgentState, CertificateInfo } from "@nbfleet/shared";
import { runCli } from "@nbfleet/testkit/cli";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { SimAgent } from "@nbfleet/testkit/sim-agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const DAY_MS = 86_400_000;

/**
 * A simulated ACME machine: `certificate.rotate` gets it a new certificate from "the CA" and
 * answers with its state, as the real agent does; `refuse` makes the CA say no instead.
 */
class AcmeAgent extends SimAgent {
  renewals = 0;
  refuse = false;
  certificate: CertificateInfo = this.issued();

  override state(): AgentState {
    const state = super.state();
    state.notebook.certificate = this.certificate;
    return state;
  }

  override sendMessage(body: Record<string, unknown>): void {
    const command = this.commands().find((c) => c.id === body.commandId);
    super.sendMessage(
      body.type === "result" && command?.name === "certificate.rotate" ? this.renewed(body) : body,
    );
  }

  private renewed(result: Record<string, unknown>): Record<string, unknown> {
    if (this.refuse) {
      const error = {
        code: "NBF_ACME_FAILED",
        message: "urn:ietf:params:acme:error:rateLimited: too many certificates",
      };
      return { type: "result", commandId: result.commandId, ok: false, error };
    }
    this.renewals++;
    this.certificate = this.issued();
    return { ...result, data: this.state() };
  }

  private issued(): CertificateInfo {
    const now = Date.now();
    return {
      fingerprintSha256: `AC:ME:0${this.renewals ?? 0}:${this.options.hostname}`,
      notBefore: new Date(now - 60_000).toISOString(),
      notAfter: new Date(now + (89 + this.renewals) * DAY_MS + DAY_MS / 2).toISOString(),
      subjectAltNames: [`DNS:${this.options.hostname}.example.test`],
      selfSigned: false,
      issuer: { kind: "acme", name: "pebble.example.test" },
      chainValid: true,
      chainProblem: null,
    };
  }
}

let controller: TestController;
const agents = new Map<string, AcmeAgent>();

beforeAll(async () => {
  controller = await startTestController({ settings: { reportIntervalSec: 1 } });
  for (const name of ["acme-1", "acme-2", "acme-3"]) {
    const credential = newAgentCredential();
    await controller.app.nbfleet.store.vms.insert({
      name,
      provider: "sim",
      state: "running",
      labels: { fleet: "acme" },
      passwordHash: null,
    });
    await controller.app.nbfleet.store.agentSecrets.issueCredential(name, hashSecret(credential));
    const agent = new AcmeAgent({ url: controller.url, token: credential, hostname: name });
    await agent.connect();
    agents.set(name, agent);
  }
  agents.get("acme-3")!.refuse = true;
}, 60_000);

afterAll(async () => {
  for (const agent of agents.values()) agent.close();
  await controller?.close();
});

const nbfleet = (...args: string[]) => runCli(controller, ...args);

describe("nbfleet op run notebook.certificate / notebook certificate on ACME machines", () => {
  it("prints what each renewed machine serves now, and the CA's refusal for the one it refused", async () => {
    const run = await nbfleet(
      "op",
      "run",
      "notebook.certificate",
      "--selector",
      "fleet=acme",
      "-c",
      "3",
      "-e",
      "1",
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(
      /acme-3\s+│\s+failed\s+│.*NBF_ACME_FAILED: urn:ietf:params:acme:error:rateLimited/,
    );
    const served = run.stdout.slice(run.stdout.indexOf("now serving:"));
    expect(served.split("\n").slice(0, 3)).toEqual([
      "now serving:",
      `  acme-1  acme (pebble.example.test), until ${agents.get("acme-1")!.certificate.notAfter}, 90 day(s) left, SHA-256 AC:ME:01:acme-1`,
      `  acme-2  acme (pebble.example.test), until ${agents.get("acme-2")!.certificate.notAfter}, 90 day(s) left, SHA-256 AC:ME:01:acme-2`,
    ]);
    expect(run.stdout).not.toMatch(/^ {2}acme-3 /m);
    expect(run.stdout).toMatch(/failed: 2 succeeded, 1 failed/);
  }, 60_000);

  it("notebook certificate NAME prints the new certificate after the command", async () => {
    const run = await nbfleet("notebook", "certificate", "acme-1");
    expect(run.code, run.stderr).toBe(0);
    expect(agents.get("acme-1")!.renewals).toBe(2);
    const cert = agents.get("acme-1")!.certificate;
    expect(run.stdout).toMatch(/^certificate\.rotate on acme-1: succeeded \(command cmd_\w+\)/);
    expect(run.stdout).toContain(
      `\nserving: acme (pebble.example.test), until ${cert.notAfter}, 91 day(s) left, SHA-256 AC:ME:02:acme-1\n`,
    );
    const refused = await nbfleet("notebook", "certificate", "acme-3");
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain("NBF_ACME_FAILED");
    expect(refused.stdout).not.toContain("serving:");
  }, 60_000);

  it("passes --hostname/--cert-ip to notebook.certificate and refuses them for other actions", async () => {
    const run = await nbfleet(
      "--json",
      "op",
      "run",
      "notebook.certificate",
      "--name",
      "acme-2",
      "--hostname",
      "alias.example.test",
      "--hostname",
      "nb.example.test",
      "--cert-ip",
      "10.0.0.5",
    );
    expect(run.code, run.stderr).toBe(0);
    const rotate = agents
      .get("acme-2")!
      .commands()
      .filter((c) => c.name === "certificate.rotate")
      .at(-1)!;
    expect(rotate.params).toEqual({
      hostnames: ["alias.example.test", "nb.example.test"],
      ips: ["10.0.0.5"],
    });

    const before = (await controller.app.nbfleet.store.operations.list(100)).length;
    const wrong = await nbfleet("op", "run", "notebook.restart", "--all", "--cert-ip", "10.0.0.5");
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain("--cert-ip: only for notebook.certificate");
    expect((await controller.app.nbfleet.store.operations.list(100)).length).toBe(before);
  }, 120_000);
});

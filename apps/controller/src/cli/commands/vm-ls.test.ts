import { hashSecret, newAgentCredential } from "@nbfleet/controller";
import type { AgentState, CertificateInfo, VmView } from "@nbfleet/shared";
import { runCli } from "@nbfleet/testkit/cli";
import { tableRows } from "@nbfleet/testkit/cli-table";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { SimAgent } from "@nbfleet/testkit/sim-agent";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const DAY_MS = 86_400_000;
// Half a day past the whole number, so the days left do not tip over while the test runs.
const inDays = (days: number) => new Date(Date.now() + (days + 0.5) * DAY_MS).toISOString();
const longAgo = new Date(Date.now() - 400 * DAY_MS).toISOString();

/** A simulated agent serving the certificate a test gives it (null: none reported). */
class CertAgent extends SimAgent {
  certificate: CertificateInfo | null = null;

  override state(): AgentState {
    const state = super.state();
    state.notebook.certificate = this.certificate;
    return state;
  }
}

const base = { subjectAltNames: ["DNS:nb.example.test"], notBefore: longAgo };
/** What each machine serves; `cert-none` is connected and reports no certificate, `cert-off` has no agent. */
const SERVED: Record<string, CertificateInfo | null> = {
  "cert-acme": {
    ...base,
    fingerprintSha256: "AC:ME",
    notAfter: inDays(63),
    selfSigned: false,
    issuer: { kind: "acme", name: "pebble.example.test" },
    chainValid: true,
    chainProblem: null,
    daysLeft: 63,
  },
  // An agent from before issue 15: no issuer, no chain, no days left.
  "cert-old": { ...base, fingerprintSha256: "0L:D0", notAfter: inDays(3649), selfSigned: true },
  "cert-prov": {
    ...base,
    fingerprintSha256: "PR:0V",
    notAfter: inDays(20),
    selfSigned: false,
    issuer: { kind: "provided", name: "Corp Issuing CA 7" },
    chainValid: false,
    chainProblem: "the intermediate is missing",
    daysLeft: 20,
  },
  "cert-gone": {
    ...base,
    fingerprintSha256: "60:NE",
    notAfter: new Date(Date.now() - 2.5 * DAY_MS).toISOString(),
    selfSigned: false,
    issuer: { kind: "acme", name: "pebble.example.test" },
    chainValid: false,
    chainProblem: "the certificate expired",
    daysLeft: -3,
  },
  "cert-none": null,
};
const NAMES = [...Object.keys(SERVED), "cert-off"];

let controller: TestController;
const agents: CertAgent[] = [];

beforeAll(async () => {
  controller = await startTestController({ settings: { reportIntervalSec: 1 } });
  const labels: Record<string, Record<string, string>> = {
    "cert-acme": { team: "a", env: "prod" },
    "cert-old": { team: "a", env: "dev" },
    "cert-prov": { team: "b", env: "dev" },
    "cert-gone": { team: "a" },
  };
  const { store } = controller.app.nbfleet;
  for (const name of NAMES) {
    const credential = newAgentCredential();
    await store.vms.insert({
      name,
      provider: "sim",
      state: "running",
      labels: labels[name] ?? {},
      passwordHash: null,
    });
    await store.agentSecrets.issueCredential(name, hashSecret(credential));
    if (name === "cert-off") continue;
    const agent = new CertAgent({ url: controller.url, token: credential, hostname: name });
    agent.certificate = SERVED[name] ?? null;
    await agent.connect();
    agents.push(agent);
  }
  await waitFor("every agent's report", async () => {
    const res = await call(controller.app, "GET", "/v1/vms?limit=100", { token: controller.adminToken });
    const items = res.json().items as VmView[];
    return items.filter((vm) => vm.notebook.state === "running").length === agents.length;
  });
}, 60_000);

afterAll(async () => {
  for (const agent of agents) agent.close();
  await controller?.close();
});

const nbfleet = (...args: string[]) => runCli(controller, ...args);

const api = async (query: string) =>
  (await call(controller.app, "GET", `/v1/vms?${query}`, { token: controller.adminToken })).json();

describe("nbfleet vm ls: certificates", () => {
  it("shows each machine's issuer and days left in a CERT column, counting days for older agents", async () => {
    const run = await nbfleet("vm", "ls");
    expect(run.code, run.stderr).toBe(0);
    const cert = Object.fromEntries(tableRows(run.stdout).map((row) => [row.NAME, row.CERT]));
    expect(cert).toEqual({
      "cert-acme": "acme 63d",
      "cert-gone": "acme expired",
      "cert-none": "-",
      "cert-off": "-",
      "cert-old": "self 3649d",
      "cert-prov": "provided 20d",
    });
  }, 60_000);

  it("--cert-expiring-within N lists the machines whose certificate ends within N days; --json is the API's items", async () => {
    const within = async (days: string) => {
      const run = await nbfleet("vm", "ls", "--cert-expiring-within", days);
      expect(run.code, run.stderr).toBe(0);
      return run.stdout === "no machines\n" ? [] : tableRows(run.stdout).map((row) => row.NAME);
    };
    expect(await within("0")).toEqual(["cert-gone"]);
    expect(await within("30")).toEqual(["cert-gone", "cert-prov"]);
    expect(await within("64")).toEqual(["cert-acme", "cert-gone", "cert-prov"]);
    expect(await within("3650")).toEqual(["cert-acme", "cert-gone", "cert-old", "cert-prov"]);

    const json = await nbfleet("--json", "vm", "ls", "--cert-expiring-within", "30");
    expect(json.code, json.stderr).toBe(0);
    const items = JSON.parse(json.stdout) as VmView[];
    // Reports go on arriving: what moves with each one is left out of the comparison.
    const still = ({ health, updatedAt, agent, ...rest }: VmView) => ({
      ...rest,
      agent: { ...agent, lastSeenAt: null },
    });
    expect(items.map(still)).toEqual((await api("certExpiresWithinDays=30")).items.map(still));
    expect(items.every((vm) => typeof vm.health.status === "string" && vm.updatedAt)).toBe(true);
    expect(items.map((vm) => vm.notebook.certificate)).toEqual([SERVED["cert-gone"], SERVED["cert-prov"]]);
  }, 120_000);

  it("refuses a day count that is not a whole number from 0 to 3650, naming the flag", async () => {
    for (const bad of ["-1", "3651", "7.5", "soon", ""]) {
      const run = await nbfleet("vm", "ls", "--cert-expiring-within", bad);
      expect(run.code, bad).toBe(2);
      expect(run.stderr, bad).toContain(
        `--cert-expiring-within must be an integer from 0 to 3650, got '${bad}'`,
      );
      expect(run.stdout, bad).toBe("");
    }
  }, 120_000);

  it("vm show prints the mode asked for, the issuer served, the chain, the expiry and days left", async () => {
    const acme = await nbfleet("vm", "show", "cert-acme");
    expect(acme.code, acme.stderr).toBe(0);
    expect(acme.stdout).toContain(
      [
        "certificate: self-signed (requested)",
        "  served:    acme (pebble.example.test)",
        "  chain:     valid",
        `  expires:   ${SERVED["cert-acme"]!.notAfter}, 63 day(s) left`,
        "  names:     DNS:nb.example.test",
        "  sha-256:   AC:ME",
      ].join("\n"),
    );
    const prov = await nbfleet("vm", "show", "cert-prov");
    expect(prov.stdout).toMatch(/^ {2}served: {4}provided \(Corp Issuing CA 7\)$/m);
    expect(prov.stdout).toMatch(/^ {2}chain: {5}INVALID: the intermediate is missing$/m);
    const gone = await nbfleet("vm", "show", "cert-gone");
    expect(gone.stdout).toMatch(/^ {2}expires: {3}\S+, EXPIRED 3 day\(s\) ago$/m);
    const old = await nbfleet("vm", "show", "cert-old");
    expect(old.stdout).toMatch(/^ {2}served: {4}self-signed \(the agent does not report the issuer\)$/m);
    expect(old.stdout).toMatch(/^ {2}chain: {5}not reported$/m);
    expect(old.stdout).toMatch(/, 3649 day\(s\) left$/m);
    const none = await nbfleet("vm", "show", "cert-off");
    expect(none.stdout).toMatch(/^certificate: self-signed \(requested\); none reported yet$/m);
  }, 120_000);
});

describe("nbfleet vm ls: sort and label expressions", () => {
  const names = async (...args: string[]) => {
    const run = await nbfleet("vm", "ls", ...args);
    expect(run.code, run.stderr).toBe(0);
    return tableRows(run.stdout).map((row) => row.NAME);
  };

  it("--sort KEY [--desc] orders the table as the API does", async () => {
    expect(await names("--sort", "name", "--desc")).toEqual([...NAMES].sort().reverse());
    // Health ascending is worst first: the machine without an agent is unknown, the rest healthy.
    const byHealth = await names("--sort", "health");
    expect(byHealth[0]).toBe("cert-off");
    expect(await names("--sort", "health", "--desc")).toEqual([
      ...NAMES.filter((n) => n !== "cert-off").sort(),
      "cert-off",
    ]);
    // Keys whose values stand still while the test runs (lastSeen moves with every report).
    for (const [key, order] of [
      ["agent", "asc"],
      ["notebook", "desc"],
    ] as const) {
      const expected = (await api(`sort=${key}&order=${order}&limit=100`)).items.map((vm: VmView) => vm.name);
      const args = ["--sort", key, ...(order === "desc" ? ["--desc"] : [])];
      expect(await names(...args), args.join(" ")).toEqual(expected);
    }
  }, 120_000);

  it("--labels EXPR selects as operation selectors do, with -l pairs and other filters beside it", async () => {
    expect(await names("--labels", "team=a,env!=prod")).toEqual(["cert-gone", "cert-old"]);
    expect(await names("--labels", "!team")).toEqual(["cert-none", "cert-off"]);
    expect(await names("--labels", "env", "-l", "team=b")).toEqual(["cert-prov"]);
    expect(
      await names("--labels", "team=a", "--cert-expiring-within", "100", "--sort", "name", "--desc"),
    ).toEqual(["cert-gone", "cert-acme"]);
  }, 120_000);

  it("refuses an unknown sort key and a malformed label expression, naming them", async () => {
    const sort = await nbfleet("vm", "ls", "--sort", "cpu");
    expect(sort.code).toBe(2);
    expect(sort.stderr).toContain(
      "--sort must be one of name, state, agent, notebook, health, restarts, lastSeen, got 'cpu'",
    );
    const labels = await nbfleet("vm", "ls", "--labels", "team=a,,env");
    expect(labels.code).toBe(2);
    expect(labels.stderr).toContain("an empty term");
    expect(labels.stderr).toContain("[NBF_SELECTOR_INVALID]");
  }, 60_000);
});

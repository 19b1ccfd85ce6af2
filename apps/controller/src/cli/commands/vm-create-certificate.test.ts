import type { ProviderVm, ProvisionContext, ProvisionResult } from "@nbfleet/controller";
import type { VmView } from "@nbfleet/shared";
import { runCli } from "@nbfleet/testkit/cli";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** The sim provider, keeping what each machine was provisioned with. */
class RecordingProvider extends SimProvider {
  readonly contexts = new Map<string, ProvisionContext>();

  override create(vm: ProviderVm, context: ProvisionContext): Promise<ProvisionResult> {
    this.contexts.set(vm.name, context);
    return super.create(vm, context);
  }
}

let controller: TestController;
const provider = new RecordingProvider();

beforeAll(async () => {
  controller = await startTestController({ provider, settings: { reportIntervalSec: 1 } });
}, 60_000);

afterAll(async () => {
  for (const agent of provider.agents.values()) agent.close();
  await controller?.close();
});

const nbfleet = (...args: string[]) => runCli(controller, ...args);
// Nothing listens here: a CLI that sent a request would fail with NBF_CONTROLLER_UNREACHABLE.
const offline = (...args: string[]) =>
  runCli({ url: "http://127.0.0.1:9", adminToken: controller.adminToken }, ...args);

describe("nbfleet vm create --certificate", () => {
  it("asks for ACME with the machine's name; the provider gets it and vm show says what was asked", async () => {
    const run = await nbfleet(
      "--json",
      "vm",
      "create",
      "nb-acme",
      "--certificate",
      "acme",
      "--hostname",
      "nb-acme.example.test",
      "--no-wait",
    );
    expect(run.code, run.stderr).toBe(0);
    const created = JSON.parse(run.stdout).vm as VmView;
    expect(created.certificate).toEqual({ mode: "acme", hostname: "nb-acme.example.test" });
    expect(provider.contexts.get("nb-acme")?.certificate).toMatchObject({
      mode: "acme",
      hostname: "nb-acme.example.test",
    });

    const shown = await nbfleet("vm", "show", "nb-acme");
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^certificate: acme for nb-acme\.example\.test \(requested\)/m);
  }, 60_000);

  it("self-signed is sent as asked and gives the provider no ACME settings", async () => {
    const run = await nbfleet(
      "--json",
      "vm",
      "create",
      "nb-self",
      "--certificate",
      "self-signed",
      "--no-wait",
    );
    expect(run.code, run.stderr).toBe(0);
    expect((JSON.parse(run.stdout).vm as VmView).certificate).toEqual({
      mode: "self-signed",
      hostname: null,
    });
    expect(provider.contexts.has("nb-self")).toBe(true);
    expect(provider.contexts.get("nb-self")?.certificate).toBeUndefined();
  }, 60_000);

  it("acme without a name on a provider that knows none: the controller's refusal names certificate.hostname", async () => {
    const run = await nbfleet("vm", "create", "nb-nameless", "--certificate", "acme", "--no-wait");
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("certificate.hostname");
    expect(provider.contexts.has("nb-nameless")).toBe(false);
  }, 60_000);

  it("refuses a bad mode, a name without acme and a name that is not a DNS name before any request", async () => {
    const cases: Array<[string[], string]> = [
      [["--certificate", "letsencrypt"], "--certificate must be one of self-signed, acme, got 'letsencrypt'"],
      [
        ["--hostname", "nb.example.test"],
        "--hostname is the name an ACME certificate is issued for; it needs --certificate acme",
      ],
      [
        ["--certificate", "self-signed", "--hostname", "nb.example.test"],
        "it needs --certificate acme (got --certificate self-signed)",
      ],
      [
        ["--certificate", "acme", "--hostname", "localhost"],
        "--hostname must be a DNS name of two or more labels",
      ],
      [["--certificate", "acme", "--hostname", "nb_1.example.test"], "got 'nb_1.example.test'"],
      [["--certificate", "acme", "--hostname", "-nb.example.test"], "got '-nb.example.test'"],
      [["--certificate", "acme", "--hostname", "nb.example.test."], "got 'nb.example.test.'"],
      [
        [
          "--certificate",
          "acme",
          "--hostname",
          `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(62)}`,
        ],
        "at most 253 characters",
      ],
    ];
    for (const [args, message] of cases) {
      const run = await offline("vm", "create", "nb-bad", ...args, "--no-wait");
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr, args.join(" ")).toContain(message);
      expect(run.stderr, args.join(" ")).not.toContain("NBF_CONTROLLER_UNREACHABLE");
    }
    expect(provider.contexts.has("nb-bad")).toBe(false);
  }, 180_000);
});

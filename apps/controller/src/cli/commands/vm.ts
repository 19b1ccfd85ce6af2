/** `nbfleet vm create|ls|show|rm|start|stop|restart|bootstrap-token`. */
import {
  CERTIFICATE_MODES,
  type CommandView,
  VM_SORT_KEYS,
  type VmCertificateRequest,
  type VmList,
  type VmView,
} from "@nbfleet/shared";
import type { Command, OptionValues } from "commander";
import { CliError, ExitCode } from "../client.js";
import { type GlobalOptions, clientFrom } from "../context.js";
import { printJson, vmDetails, vmTable } from "../output.js";
import { collect, dnsName, integerIn, labelPair, oneOf } from "../parse.js";
import { readSecretLine } from "../secret-input.js";
import { isServing, waitForVm } from "../wait.js";

interface IssuedBootstrapToken {
  vmName: string;
  token: string;
  expiresAt: string;
  note: string;
}

interface CreatedVm {
  vm: VmView;
  password: string | null;
  passwordCommand: CommandView;
}

export function registerVm(program: Command, globals: () => GlobalOptions): void {
  const vm = program.command("vm").description("notebook machines");

  vm.command("create <name>")
    .description("create a machine; prints its notebook URL and one-time password")
    .option("-l, --label <key=value>", "a label (repeatable)", collect)
    .option("--provider <name>", "provider (default: the controller's)")
    .option("--password-stdin", "take the notebook password from stdin instead of generating one")
    .option(
      "--certificate <mode>",
      `where the notebook's certificate comes from: ${CERTIFICATE_MODES.join(" or ")} (default: the controller's)`,
      oneOf("--certificate", CERTIFICATE_MODES),
    )
    .option(
      "--hostname <name>",
      "with --certificate acme: the machine's public DNS name (default: the provider's, e.g. Azure's)",
      dnsName("--hostname"),
    )
    .option("--no-wait", "return at once instead of waiting until the notebook serves")
    .option("--timeout <sec>", "how long --wait waits", integerIn("--timeout", 1, 86_400), 600)
    .action(async (name: string, opts) => {
      const g = globals();
      const client = await clientFrom(g);
      const labels = Object.fromEntries(((opts.label as string[] | undefined) ?? []).map(labelPair));
      const certificate = certificateRequest(opts);
      const password = opts.passwordStdin ? await readSecretLine(process.stdin) : undefined;
      const created = await client.post<CreatedVm>("/v1/vms", {
        name,
        ...(Object.keys(labels).length ? { labels } : {}),
        ...(opts.provider ? { provider: opts.provider } : {}),
        ...(password ? { password } : {}),
        ...(certificate ? { certificate } : {}),
      });
      const final = opts.wait
        ? await waitForVm(client, name, "serving", isServing, opts.timeout, Boolean(g.json))
        : created.vm;
      if (g.json) return printJson({ vm: final, password: created.password });
      console.log(vmDetails(final));
      if (created.password)
        console.log(`\npassword:    ${created.password}   (shown once; only its hash is kept)`);
    });

  vm.command("ls")
    .description("list machines with health at a glance")
    .option("-l, --label <key=value>", "only machines with this label (repeatable)", collect)
    .option("--state <state>", "only machines in this state")
    .option("--health <status>", "only healthy|degraded|unhealthy|unknown machines")
    .option("--agent-version <version>", "only machines whose agent runs this version")
    .option(
      "--labels <expr>",
      "only machines matching a label expression: 'team=a,env!=prod' (k=v, k!=v, k, !k)",
    )
    .option(
      "--cert-expiring-within <days>",
      "only machines whose served certificate expires within this many days",
      integerIn("--cert-expiring-within", 0, 3650),
    )
    .option("--sort <key>", `sort by ${VM_SORT_KEYS.join("|")} (default name)`, oneOf("--sort", VM_SORT_KEYS))
    .option("--desc", "sort descending (health: best first)")
    .action(async (opts) => {
      const g = globals();
      const client = await clientFrom(g);
      const items: VmView[] = [];
      let cursor: string | null = null;
      do {
        const query = listQuery(opts);
        if (cursor) query.set("cursor", cursor);
        const page: VmList = await client.get<VmList>(`/v1/vms?${query}`);
        items.push(...page.items);
        cursor = page.nextCursor;
      } while (cursor);
      if (g.json) return printJson(items);
      console.log(items.length ? vmTable(items) : "no machines");
    });

  vm.command("show <name>")
    .description("one machine in detail, with every health check")
    .action(async (name: string) => {
      const g = globals();
      const found = await (await clientFrom(g)).get<VmView>(`/v1/vms/${encodeURIComponent(name)}`);
      if (g.json) return printJson(found);
      console.log(vmDetails(found));
    });

  vm.command("bootstrap-token <name>")
    .description("issue a new bootstrap token for the machine's agent (admin; shown once)")
    .action(async (name: string) => {
      const g = globals();
      const issued = await (await clientFrom(g)).post<IssuedBootstrapToken>(
        `/v1/vms/${encodeURIComponent(name)}/bootstrap-token`,
      );
      if (g.json) return printJson(issued);
      console.log(`bootstrap token: ${issued.token}   (shown once; expires ${issued.expiresAt})`);
      console.log(issued.note);
    });

  vm.command("rm <name>")
    .description("delete a machine and everything it left behind")
    .option("-y, --yes", "do not ask (required when stdin is not a terminal)")
    .action(async (name: string, opts) => {
      const g = globals();
      if (!opts.yes) {
        throw new CliError(
          "NBF_CONFIRMATION_REQUIRED",
          `deleting ${name} cannot be undone; pass --yes`,
          ExitCode.usage,
        );
      }
      await (await clientFrom(g)).delete(`/v1/vms/${encodeURIComponent(name)}`);
      if (g.json) return printJson({ deleted: name });
      console.log(`deleted ${name}`);
    });

  for (const action of ["start", "stop", "restart"] as const) {
    vm.command(`${action} <name>`)
      .description(`${action} the machine`)
      .option("--no-wait", "return at once")
      .option("--timeout <sec>", "how long to wait", integerIn("--timeout", 1, 86_400), 600)
      .action(async (name: string, opts) => {
        const g = globals();
        const client = await clientFrom(g);
        let result = await client.post<VmView>(`/v1/vms/${encodeURIComponent(name)}/${action}`);
        if (opts.wait) {
          result =
            action === "stop"
              ? await waitForVm(
                  client,
                  name,
                  "stopped",
                  (v) => v.state === "stopped",
                  opts.timeout,
                  Boolean(g.json),
                )
              : await waitForVm(client, name, "serving", isServing, opts.timeout, Boolean(g.json));
        }
        if (g.json) return printJson(result);
        console.log(vmDetails(result));
      });
  }
}

/** `vm ls`'s filters and sort as `GET /v1/vms` parameters (the cursor is added per page). */
function listQuery(opts: OptionValues): URLSearchParams {
  const query = new URLSearchParams();
  for (const label of (opts.label as string[] | undefined) ?? []) query.append("label", label);
  if (opts.labels) query.set("labels", opts.labels);
  if (opts.state) query.set("state", opts.state);
  if (opts.health) query.set("health", opts.health);
  if (opts.agentVersion) query.set("agentVersion", opts.agentVersion);
  if (opts.certExpiringWithin !== undefined)
    query.set("certExpiresWithinDays", String(opts.certExpiringWithin));
  if (opts.sort) query.set("sort", opts.sort);
  if (opts.desc) query.set("order", "desc");
  query.set("limit", "1000");
  return query;
}

/** `--certificate`/`--hostname` as the create body's `certificate`, refused before any request when they do not fit. */
function certificateRequest(opts: OptionValues): VmCertificateRequest | undefined {
  if (opts.hostname !== undefined && opts.certificate !== "acme") {
    throw new CliError(
      "NBF_INVALID_INPUT",
      `--hostname is the name an ACME certificate is issued for; it needs --certificate acme${opts.certificate ? ` (got --certificate ${opts.certificate})` : ""}`,
      ExitCode.usage,
    );
  }
  if (!opts.certificate) return undefined;
  return { mode: opts.certificate, ...(opts.hostname ? { hostname: opts.hostname } : {}) };
}

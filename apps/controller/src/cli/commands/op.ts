/**
 * `nbfleet op run|ls|show|cancel`: bulk operations. `run` starts one, shows a live progress
 * bar (only on a terminal, never with --json), waits for the end and prints every target.
 * Password rotation prints each new password once, or writes them to a new 0600 file (--out).
 */
import { open } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { CommandView } from "@nbfleet/shared";
import { isArtifactVersion } from "@nbfleet/shared/artifact-signature";
import { TOO_LARGE, readAtMost } from "@nbfleet/shared/read-at-most";
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import type {
  CreatedOperation,
  OperationDetail,
  OperationList,
  OperationView,
  TargetView,
} from "../../api/operations/schemas.js";
import { OPERATION_ACTIONS } from "../../operations/actions.js";
import { certificateFromResult, certificateSummary } from "../certificate-view.js";
import { type ApiClient, CliError, ExitCode } from "../client.js";
import { UPGRADE_VERSION_FLAG } from "../command-version-flag.js";
import { type GlobalOptions, clientFrom } from "../context.js";
import { ago, printJson, table } from "../output.js";
import { collect, integerIn } from "../parse.js";
import { spinner } from "../wait.js";

const HEALTH = ["healthy", "degraded", "unhealthy", "unknown"];
const BAR_WIDTH = 24;
const POLL_MS = 500;
/** Beyond this many renewed machines, `vm ls` says it better than one line each. */
const SERVED_LINES_MAX = 200;

/** agent.upgrade's part of the request; its flags given to another action are refused. */
function upgradeFields(action: string, opts: Record<string, unknown>): Record<string, unknown> {
  const version = (opts.upgradeVersion ?? opts.version) as string | undefined;
  const given = [
    version !== undefined && "--version",
    opts.canary !== undefined && "--canary",
    opts.canarySoakSec !== undefined && "--canary-soak-sec",
    opts.upgradeTimeoutSec !== undefined && "--upgrade-timeout-sec",
  ].filter(Boolean);
  if (action !== "agent.upgrade") {
    if (given.length > 0)
      throw new CliError("NBF_INVALID_OPTION", `${given.join(", ")}: only for agent.upgrade`, ExitCode.usage);
    return {};
  }
  if (version === undefined)
    throw new CliError("NBF_INVALID_VERSION", "agent.upgrade needs --version <version>", ExitCode.usage);
  if (!isArtifactVersion(version))
    throw new CliError(
      "NBF_INVALID_VERSION",
      `--version must look like 1.2.3 (semver), got '${version}'`,
      ExitCode.usage,
    );
  return {
    params: {
      version,
      ...(opts.upgradeTimeoutSec !== undefined ? { timeoutSec: opts.upgradeTimeoutSec } : {}),
    },
    ...(opts.canary !== undefined ? { canary: opts.canary } : {}),
    ...(opts.canarySoakSec !== undefined ? { canarySoakSec: opts.canarySoakSec } : {}),
  };
}

function limit(flag: string) {
  return (raw: string): number | string => {
    if (/^\d+$/.test(raw)) return Number(raw);
    if (/^\d+(\.\d+)?%$/.test(raw)) return raw;
    throw new InvalidArgumentError(`${flag} must be a count or a percentage like 10%, got '${raw}'`);
  };
}

/** notebook.certificate's extra names and addresses; given to another action, refused. */
function certificateFields(action: string, opts: Record<string, unknown>): Record<string, unknown> {
  const hostnames = opts.hostname as string[] | undefined;
  const ips = opts.certIp as string[] | undefined;
  if (action !== "notebook.certificate") {
    const given = [hostnames && "--hostname", ips && "--cert-ip"].filter(Boolean);
    if (given.length > 0)
      throw new CliError(
        "NBF_INVALID_OPTION",
        `${given.join(", ")}: only for notebook.certificate`,
        ExitCode.usage,
      );
    return {};
  }
  if (!hostnames && !ips) return {};
  return { params: { ...(hostnames ? { hostnames } : {}), ...(ips ? { ips } : {}) } };
}

/** The largest certificate file --trust-cert reads (a PEM certificate is a few KiB). */
const TRUST_CERT_MAX_BYTES = 64 * 1024;

/** controller.trust's certificates, read from their files; given to another action, refused. */
async function trustFields(action: string, opts: Record<string, unknown>): Promise<Record<string, unknown>> {
  const files = opts.trustCert as string[] | undefined;
  if (action !== "controller.trust") {
    if (files)
      throw new CliError("NBF_INVALID_OPTION", "--trust-cert: only for controller.trust", ExitCode.usage);
    return {};
  }
  if (!files)
    throw new CliError(
      "NBF_INVALID_OPTION",
      "controller.trust needs --trust-cert <file> for every controller certificate to trust (the one served now among them)",
      ExitCode.usage,
    );
  const certificates = await Promise.all(files.map(readCertificateFile));
  return { params: { certificates } };
}

async function readCertificateFile(file: string): Promise<string> {
  const problem = (what: string) =>
    new CliError("NBF_INVALID_OPTION", `--trust-cert ${file}: ${what}`, ExitCode.usage);
  const text = await readAtMost(file, TRUST_CERT_MAX_BYTES).catch((error: NodeJS.ErrnoException) => {
    throw problem(error.code ?? error.message);
  });
  if (text === null) throw problem("ENOENT");
  if (text === TOO_LARGE) throw problem(`larger than ${TRUST_CERT_MAX_BYTES} bytes, not a PEM certificate`);
  return text;
}

export function registerOp(program: Command, globals: () => GlobalOptions): void {
  const op = program.command("op").description("bulk operations over many machines");

  op.command("run <action>")
    .description(`run an action over the selected machines: ${OPERATION_ACTIONS.join(", ")}`)
    .option("-s, --selector <labels>", "label expression, e.g. 'team=a,env!=prod' (key=v, key!=v, key, !key)")
    .option("-n, --name <name>", "a machine by name (repeatable)", collect)
    .option("--health <status>", `only machines with this health (repeatable): ${HEALTH.join(", ")}`, collect)
    .option("--all", "the whole fleet (needed when no other selector is given)")
    .option("-c, --max-concurrency <n|n%>", "machines at once (default 10%)", limit("--max-concurrency"))
    .option(
      "-e, --max-errors <n|n%>",
      "failures tolerated before no new machine starts (default 0)",
      limit("--max-errors"),
    )
    .option("--rolling", "batches of --max-concurrency; the next starts when the last is healthy again")
    .option(
      "--health-timeout <sec>",
      "rolling: how long each machine may take to be healthy",
      integerIn("--health-timeout", 1, 86_400),
    )
    .option("--out <file>", "notebook.password: write the new passwords to this new file (mode 0600)")
    .option(
      "--hostname <name>",
      "notebook.certificate, self-signed machines: an extra DNS name for the certificate (repeatable)",
      collect,
    )
    .option(
      "--cert-ip <addr>",
      "notebook.certificate, self-signed machines: an extra IP address for the certificate (repeatable)",
      collect,
    )
    // Parsed under UPGRADE_VERSION_FLAG (see command-version-flag.ts); shown as --version.
    .addOption(new Option(`${UPGRADE_VERSION_FLAG} <version>`).hideHelp())
    .addOption(new Option("--version <version>", "agent.upgrade: the published agent version to install"))
    .option(
      "--canary <n>",
      "agent.upgrade: the first n machines go alone and must stay healthy on the new version before the rest",
      integerIn("--canary", 0, 100_000),
    )
    .option(
      "--canary-soak-sec <sec>",
      "agent.upgrade: how long the canaries must stay healthy (default 60)",
      integerIn("--canary-soak-sec", 0, 86_400),
    )
    .option(
      "--upgrade-timeout-sec <sec>",
      "agent.upgrade: how long a new agent has to come back healthy before its machine rolls back (default 120)",
      integerIn("--upgrade-timeout-sec", 10, 3600),
    )
    .option(
      "--trust-cert <file>",
      "controller.trust: a controller certificate (PEM) the agents are to trust from now on, the served one among them (repeatable, at most 4)",
      collect,
    )
    .option("--no-wait", "return once the operation is created")
    .option("--timeout <sec>", "how long to wait for the end", integerIn("--timeout", 1, 7 * 86_400), 3600)
    .action(async (action: string, opts) => {
      const g = globals();
      const json = Boolean(g.json);
      if (!(OPERATION_ACTIONS as readonly string[]).includes(action)) {
        throw new CliError(
          "NBF_INVALID_ACTION",
          `unknown action '${action}'; one of ${OPERATION_ACTIONS.join(", ")}`,
          ExitCode.usage,
        );
      }
      for (const h of (opts.health as string[] | undefined) ?? [])
        if (!HEALTH.includes(h))
          throw new CliError(
            "NBF_INVALID_HEALTH",
            `--health must be one of ${HEALTH.join(", ")}, got '${h}'`,
            ExitCode.usage,
          );
      if (opts.out && action !== "notebook.password")
        throw new CliError("NBF_INVALID_OUT", "--out is only for notebook.password", ExitCode.usage);
      const upgrade = upgradeFields(action, opts);
      const certificate = certificateFields(action, opts);
      const trust = await trustFields(action, opts);
      // Opened before anything changes: an existing file is never overwritten, and a bad path
      // fails before passwords exist that nobody could read.
      const out = opts.out
        ? await open(opts.out, "wx", 0o600).catch((error: NodeJS.ErrnoException) => {
            throw new CliError(
              "NBF_OUT_FILE",
              `cannot create ${opts.out}: ${error.code === "EEXIST" ? "it exists (choose a new file)" : error.message}`,
              ExitCode.usage,
            );
          })
        : null;
      const client = await clientFrom(g);
      let created: CreatedOperation;
      try {
        created = await client.post<CreatedOperation>("/v1/operations", {
          action,
          selector: {
            ...(opts.selector ? { labels: opts.selector } : {}),
            ...(opts.name ? { names: opts.name } : {}),
            ...(opts.health ? { health: opts.health } : {}),
            ...(opts.all ? { all: true } : {}),
          },
          ...(opts.maxConcurrency !== undefined ? { maxConcurrency: opts.maxConcurrency } : {}),
          ...(opts.maxErrors !== undefined ? { maxErrors: opts.maxErrors } : {}),
          ...upgrade,
          ...certificate,
          ...trust,
          ...(opts.rolling
            ? {
                rolling: {
                  enabled: true,
                  ...(opts.healthTimeout ? { healthTimeoutSec: opts.healthTimeout } : {}),
                },
              }
            : {}),
        });
        if (out && created.passwords) {
          await out.writeFile(
            Object.entries(created.passwords)
              .map(([name, password]) => `${name}\t${password}\n`)
              .join(""),
          );
        }
      } finally {
        await out?.close();
      }
      const passwords = out ? null : created.passwords;
      if (!json) {
        const o = created.operation;
        console.error(
          `operation ${o.id}: ${o.action}${o.upgrade ? ` to ${o.upgrade.version}` : ""} on ${o.total} machine(s), ${o.maxConcurrency} at a time, up to ${o.maxErrors} error(s)${o.rolling.enabled ? ", rolling" : ""}${o.upgrade?.canary ? `, canary ${o.upgrade.canary} first` : ""}`,
        );
        if (opts.out)
          console.error(`new passwords written to ${opts.out} (mode 0600); they are not shown again`);
      }
      if (!opts.wait) {
        if (json) printJson({ operation: created.operation, passwords });
        else printPasswords(passwords);
        return;
      }
      const final = await follow(client, created.operation, opts.timeout, json);
      const targets = await allTargets(client, final.id);
      if (json) printJson({ operation: final, passwords, targets });
      else {
        console.log(targetTable(targets));
        if (action === "notebook.certificate") await printServedCertificates(client, targets);
        console.log(summaryLine(final));
        printPasswords(passwords);
      }
      if (final.state !== "succeeded") process.exitCode = ExitCode.failure;
    });

  op.command("ls")
    .description("operations, newest first")
    .option("--state <state>", "only pending|running|succeeded|failed|cancelled ones")
    .option("--limit <n>", "how many", integerIn("--limit", 1, 500), 50)
    .action(async (opts) => {
      const g = globals();
      const client = await clientFrom(g);
      const query = new URLSearchParams({ limit: String(opts.limit) });
      if (opts.state) query.set("state", opts.state);
      const list = await client.get<OperationList>(`/v1/operations?${query}`);
      if (g.json) return printJson(list);
      console.log(
        table(
          ["ID", "ACTION", "STATE", "DONE", "FAILED", "SELECTOR", "CREATED", "BY"],
          list.items.map((o) => [
            o.id,
            o.action,
            o.state,
            `${o.counts.succeeded + o.counts.failed}/${o.total}`,
            String(o.counts.failed),
            selectorText(o),
            ago(o.createdAt),
            o.createdBy ?? "-",
          ]),
        ),
      );
    });

  op.command("show <id>")
    .description("an operation and every target")
    .option("--state <state>", "only targets in this state (e.g. failed)")
    .action(async (id: string, opts) => {
      const g = globals();
      const client = await clientFrom(g);
      const detail = await client.get<OperationDetail>(
        `/v1/operations/${encodeURIComponent(id)}?targetsLimit=0`,
      );
      const targets = await allTargets(client, id, opts.state);
      if (g.json) return printJson({ ...detail, targets });
      console.log(describe(detail));
      console.log(targetTable(targets));
    });

  op.command("cancel <id>")
    .description("cancel: no new machine starts; running ones finish")
    .action(async (id: string) => {
      const g = globals();
      const client = await clientFrom(g);
      const cancelled = await client.post<OperationDetail>(`/v1/operations/${encodeURIComponent(id)}/cancel`);
      if (g.json) return printJson(cancelled);
      console.log(
        `operation ${cancelled.id}: cancel requested; ${cancelled.counts.running} running target(s) finish, ${cancelled.counts.cancelled} cancelled`,
      );
    });
}

/** Polls until the operation ends, with a progress bar on a terminal. */
async function follow(
  client: ApiClient,
  start: OperationView,
  timeoutSec: number,
  quiet: boolean,
): Promise<OperationView> {
  const spin = spinner(progressText(start), quiet);
  const deadline = Date.now() + timeoutSec * 1000;
  let current = start;
  try {
    while (current.state === "running" || current.state === "pending") {
      if (Date.now() > deadline) {
        throw new CliError(
          "NBF_WAIT_TIMEOUT",
          `gave up waiting after ${timeoutSec} s: operation ${current.id} is still running (nbfleet op show ${current.id})`,
          ExitCode.timeout,
        );
      }
      await sleep(POLL_MS);
      current = await client.get<OperationDetail>(
        `/v1/operations/${encodeURIComponent(current.id)}?targetsLimit=0`,
      );
      if (spin) spin.text = progressText(current);
    }
    return current;
  } finally {
    spin?.stop();
  }
}

export function progressText(o: OperationView): string {
  const done = o.counts.succeeded + o.counts.failed + o.counts.skipped + o.counts.cancelled;
  const filled = o.total === 0 ? BAR_WIDTH : Math.round((done / o.total) * BAR_WIDTH);
  const bar = `${"█".repeat(filled)}${"░".repeat(BAR_WIDTH - filled)}`;
  return `${o.action} ${bar} ${done}/${o.total}  ✔ ${o.counts.succeeded}  ✖ ${o.counts.failed}  ⟳ ${o.counts.running}${o.cancelRequestedAt ? "  (cancelling)" : ""}`;
}

async function allTargets(client: ApiClient, id: string, state?: string): Promise<TargetView[]> {
  const out: TargetView[] = [];
  let cursor: string | null = null;
  do {
    const query = new URLSearchParams({ targetsLimit: "1000" });
    if (cursor) query.set("targetsCursor", cursor);
    if (state) query.set("targetState", state);
    const page: OperationDetail = await client.get<OperationDetail>(
      `/v1/operations/${encodeURIComponent(id)}?${query}`,
    );
    out.push(...page.targets.items);
    cursor = page.targets.nextCursor;
  } while (cursor);
  return out;
}

function targetTable(targets: TargetView[]): string {
  return table(
    ["#", "MACHINE", "STATE", "TOOK", "ERROR"],
    targets.map((t) => [
      String(t.seq),
      t.vmName,
      t.state,
      t.startedAt && t.finishedAt
        ? `${((Date.parse(t.finishedAt) - Date.parse(t.startedAt)) / 1000).toFixed(1)}s`
        : "-",
      t.error ? `${t.error.code}: ${t.error.message}` : "",
    ]),
  );
}

function summaryLine(o: OperationView): string {
  const c = o.counts;
  return `operation ${o.id} ${o.state}: ${c.succeeded} succeeded, ${c.failed} failed, ${c.skipped} skipped, ${c.cancelled} cancelled of ${o.total}${o.reason ? ` — ${o.reason}` : ""}`;
}

function describe(o: OperationView): string {
  return [
    `operation:   ${o.id} (${o.action}) ${o.state}`,
    `selector:    ${selectorText(o)}`,
    `limits:      ${o.maxConcurrency} at a time (asked ${o.requested.maxConcurrency}), up to ${o.maxErrors} error(s) (asked ${o.requested.maxErrors})${o.rolling.enabled ? `, rolling (health timeout ${o.rolling.healthTimeoutSec} s)` : ""}`,
    ...(o.upgrade
      ? [
          `upgrade:     to ${o.upgrade.version} (guest rollback after ${o.upgrade.timeoutSec} s)${o.upgrade.canary > 0 ? `, canary ${o.upgrade.canary} soaked ${o.upgrade.canarySoakSec} s` : ""}`,
        ]
      : []),
    `progress:    ${progressText(o)}`,
    `created:     ${o.createdAt} by ${o.createdBy ?? "-"}${o.finishedAt ? `; finished ${o.finishedAt}` : ""}`,
    ...(o.reason ? [`reason:      ${o.reason}`] : []),
  ].join("\n");
}

function selectorText(o: OperationView): string {
  const s = o.selector;
  const parts = [
    ...(s.all ? ["all"] : []),
    ...(s.names
      ? [
          `names=${s.names.length > 3 ? `${s.names.slice(0, 3).join(",")},…(${s.names.length})` : s.names.join(",")}`,
        ]
      : []),
    ...(s.labels ? [s.labels] : []),
    ...(s.health ? [`health=${s.health.join("|")}`] : []),
  ];
  return parts.join(" ") || "-";
}

/** notebook.certificate: what each renewed machine serves now, from its command's result. */
async function printServedCertificates(client: ApiClient, targets: TargetView[]): Promise<void> {
  const done = targets.filter((t) => t.state === "succeeded" && t.commandId);
  if (done.length === 0) return;
  if (done.length > SERVED_LINES_MAX) {
    console.log(`\n${done.length} certificates renewed; see them with nbfleet vm ls (CERT column)`);
    return;
  }
  const lines: string[] = [];
  for (let i = 0; i < done.length; i += 8) {
    const batch = done.slice(i, i + 8);
    const commands = await Promise.all(
      batch.map((t) => client.get<CommandView>(`/v1/commands/${encodeURIComponent(t.commandId!)}`)),
    );
    for (const [j, command] of commands.entries()) {
      const cert = certificateFromResult(command.result);
      lines.push(`  ${batch[j]!.vmName}  ${cert ? certificateSummary(cert) : "(the agent did not say)"}`);
    }
  }
  console.log(`\nnow serving:\n${lines.join("\n")}`);
}

function printPasswords(passwords: Record<string, string> | null): void {
  if (!passwords) return;
  console.log("\nnew notebook passwords (shown once; only their hashes are kept):");
  for (const [name, password] of Object.entries(passwords)) console.log(`  ${name}\t${password}`);
}

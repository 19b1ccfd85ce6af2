/** The agent's subcommands. Each one either drives the running agent over its control socket or acts on the data directory directly. */
import { access, open, readFile, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { AgentState, CommandName, CommandParamsOf } from "@nbfleet/shared";
import type { Command } from "commander";
import { Agent } from "../agent.js";
import { loadSettings } from "../config/load.js";
import { dataPaths } from "../config/paths.js";
import type { AgentSettings } from "../config/settings.js";
import { fetchEvents, fetchState, isAgentRunning, sendCommand } from "../control/client.js";
import { serveControlSocket } from "../control/server.js";
import { AgentError } from "../errors.js";
import { formatPlan } from "../install/plan.js";
import { ensureInstalled } from "../install/run.js";
import { readCredential } from "../link/credential.js";
import { runLink, timingFromSettings } from "../link/link.js";
import { stderrLinkLog, teeLinkLog } from "../link/log.js";
import { setupLink } from "../link/setup.js";
import { readHashFile } from "../password/hash-file.js";
import { hashForServer, validateHash } from "../password/hash.js";
import { readPassword } from "../password/stdin.js";
import { AgentStreams } from "../streams/agent-streams.js";
import { tailLines } from "../supervisor/log-file.js";
import { installCertificate } from "../tls/ensure.js";
import { inspectOffline } from "./offline-status.js";
import { collect, integerIn, oneOf } from "./parse.js";

interface DataDirOption {
  dataDir: string;
  json?: boolean;
}

const print = (json: boolean | undefined, value: unknown, human: () => string) =>
  console.log(json ? JSON.stringify(value, null, 2) : human());

export function registerCommands(program: Command): void {
  const dataDir = (cmd: Command) =>
    cmd.requiredOption("--data-dir <dir>", "the agent's data directory (profile, state, logs)");

  dataDir(program.command("up"))
    .description(
      "install what is missing, write the nbserver profile, start and supervise the notebook server",
    )
    .option("--port <port>", "private notebook port (default 9999)", integerIn("--port", 1, 65535))
    .option("--ip <addr>", "address the notebook binds (default 0.0.0.0)")
    .option("--notebook-dir <dir>", "directory the notebook serves (default DIR/notebooks)")
    .option("--base-url <path>", "URL prefix, starting with / (default /)")
    .option(
      "--run-as <user>",
      "unprivileged user the server runs as when the agent is root (default nbfleet)",
    )
    .option("--allow-root", "let the notebook run as root (explicit opt-out)")
    .option(
      "--hostname <name>",
      "extra DNS name for the certificate and the printed URL (repeatable)",
      collect,
    )
    .option("--cert-ip <addr>", "extra IP address for the certificate (repeatable)", collect)
    .option(
      "--public-url <url>",
      "the URL people reach the notebook at, when not its own address (e.g. https://<fqdn>/ behind a 443 redirect)",
    )
    .option("--password-stdin", "read the notebook password from the first line of stdin")
    .option(
      "--password-hash-file <file>",
      "file (mode 0600) holding the initial password as a ready Jupyter hash; applied only when DIR has no password yet",
    )
    .option(
      "--password-hash <hash>",
      "the initial password as a ready Jupyter hash (argon2:… or sha1:…); applied only when DIR has no password yet (prefer --password-hash-file: a command line is visible to every local user)",
    )
    .option(
      "--cert-file <file>",
      "an operator-provided certificate (with --key-file); installed only when DIR has no certificate yet",
    )
    .option("--key-file <file>", "the private key of --cert-file")
    .option(
      "--controller <url>",
      "the controller to connect to (https://… or wss://…; http:// only for a local one); remembered in DIR (env NBFLEET_CONTROLLER_URL)",
    )
    .option(
      "--bootstrap-token-file <file>",
      "file holding the one-time bootstrap token, exchanged for a credential kept in DIR/state (env NBFLEET_BOOTSTRAP_TOKEN)",
    )
    .option("--controller-ca <file>", "trust only this CA (PEM) for the controller's certificate; remembered")
    .option(
      "--controller-fingerprint <sha256>",
      "pin the controller's certificate by its SHA-256 fingerprint; remembered",
    )
    .option("--json", "print the start-up summary as one JSON line")
    .action(async (opts) => {
      const overrides = settingsFromFlags(opts);
      const paths = dataPaths(opts.dataDir);
      if (await isAgentRunning(paths.controlSocket)) {
        throw new AgentError("NBF_AGENT_ALREADY_RUNNING", `an agent already runs for ${opts.dataDir}`);
      }
      const link = await setupLink(paths, (await loadSettings(paths)).link, opts);
      overrides.link = link.settings;
      if (
        link.settings.controllerUrl &&
        !link.bootstrapToken &&
        !(await readCredential(paths.controllerCredential))
      ) {
        throw new AgentError(
          "NBF_INVALID_INPUT",
          `no controller credential at ${paths.controllerCredential}; give the one-time bootstrap token with --bootstrap-token-file or NBFLEET_BOOTSTRAP_TOKEN`,
        );
      }
      if (opts.passwordHash && opts.passwordHashFile) {
        throw new AgentError(
          "NBF_INVALID_INPUT",
          "give at most one of --password-hash and --password-hash-file",
        );
      }
      const password = opts.passwordStdin ? await readPassword(process.stdin) : undefined;
      const passwordHash = opts.passwordHashFile
        ? await readHashFile(opts.passwordHashFile)
        : opts.passwordHash;
      if (passwordHash) validateHash(passwordHash);
      const agent = await Agent.open({
        dataDir: opts.dataDir,
        overrides,
        ...(password !== undefined ? { password } : {}),
        ...(passwordHash ? { passwordHash } : {}),
      });
      if (opts.certFile || opts.keyFile) {
        if (!opts.certFile || !opts.keyFile) {
          throw new AgentError("NBF_INVALID_INPUT", "--cert-file and --key-file go together");
        }
        // Like the initial password: a launcher repeats its flags on every start, and a
        // certificate installed or rotated since must survive that.
        if (await exists(agent.paths.certFile)) {
          console.error(
            `nbfleet-agent: --cert-file not installed: ${agent.paths.certFile} already exists (replace it with \`certificate install\`)`,
          );
        } else {
          await installCertificate(
            agent.paths,
            await readFile(opts.certFile, "utf8"),
            await readFile(opts.keyFile, "utf8"),
          );
        }
      }
      const server = await serveControlSocket(agent.paths.controlSocket, agent, agent.events);
      let how: Awaited<ReturnType<Agent["up"]>>;
      try {
        how = await agent.up((message) => !opts.json && console.error(`… ${message}`));
      } catch (error) {
        server.close();
        agent.close();
        throw error;
      }
      const state = agent.state();
      const summary = {
        how,
        url: state.notebook.url,
        pid: state.notebook.pid,
        fingerprintSha256: state.notebook.certificate?.fingerprintSha256 ?? null,
        health: state.health.status,
        dataDir: agent.paths.dataDir,
        controller: agent.settings.link.controllerUrl,
      };
      if (opts.json) console.log(JSON.stringify(summary));
      else {
        console.log(`notebook server ${how === "adopted" ? "re-adopted" : "started"} (pid ${summary.pid})`);
        console.log(`  URL:         ${summary.url}`);
        console.log(`  Certificate: SHA-256 ${summary.fingerprintSha256}`);
        console.log(`  Health:      ${summary.health}`);
        if (summary.controller) console.log(`  Controller:  ${summary.controller}`);
        console.log(
          "Supervising. Ctrl-C stops the notebook server; SIGTERM leaves it running for the next agent.",
        );
      }
      agent.subscribe({
        onState: () => {},
        onEvent: (event) =>
          console.error(`${event.at} ${event.level} ${event.kind}: ${event.message.split("\n")[0]}`),
      });
      const stopLink = new AbortController();
      const linkSettings = agent.settings.link;
      const linkDone = linkSettings.controllerUrl
        ? runLink({
            url: linkSettings.controllerUrl,
            credentialFile: agent.paths.controllerCredential,
            ...(link.bootstrapToken ? { bootstrapToken: link.bootstrapToken } : {}),
            tls: {
              ...(linkSettings.caFile ? { caFile: linkSettings.caFile } : {}),
              ...(linkSettings.fingerprintSha256
                ? { fingerprintSha256: linkSettings.fingerprintSha256 }
                : {}),
            },
            core: agent,
            streams: new AgentStreams({
              target: () => agent.terminalTarget(),
              logFile: (source) => (source === "agent" ? agent.paths.agentLog : agent.paths.notebookLog),
              redact: (line) => agent.redactLog(line),
            }),
            log: teeLinkLog(stderrLinkLog(), agent.log.child({ module: "link" })),
            signal: stopLink.signal,
            timing: timingFromSettings(linkSettings),
          }).catch((error) =>
            console.error(`nbfleet-agent: controller link stopped: ${(error as Error).message}`),
          )
        : Promise.resolve();
      await new Promise<void>((resolve) => {
        const finish = async (stopNotebook: boolean) => {
          stopLink.abort();
          await linkDone;
          server.close();
          if (stopNotebook) await agent.shutdown();
          else agent.close();
          resolve();
        };
        process.once("SIGINT", () => void finish(true));
        process.once("SIGTERM", () => void finish(false));
      });
    });

  dataDir(program.command("install"))
    .description("install Jupyter if missing (idempotent) and record the detected generation and version")
    .option("--dry-run", "print the plan, run nothing")
    .option("--json", "print JSON")
    .action(async (opts: DataDirOption & { dryRun?: boolean }) => {
      const result = await ensureInstalled({
        paths: dataPaths(opts.dataDir),
        dryRun: Boolean(opts.dryRun),
        isRoot: process.getuid?.() === 0,
        onProgress: (message) => !opts.json && console.error(`… ${message}`),
      });
      print(opts.json, result, () =>
        result.action === "dry-run"
          ? formatPlan(result.plan)
          : `${result.action}: ${result.record.generation} ${result.record.version} (${result.record.jupyterPath})`,
      );
    });

  dataDir(program.command("status"))
    .description("print the health model (works while `up` runs in another process)")
    .option("--json", "print JSON")
    .action(async (opts: DataDirOption) => {
      const paths = dataPaths(opts.dataDir);
      const running = await isAgentRunning(paths.controlSocket);
      const state = running ? await fetchState(paths.controlSocket) : await inspectOffline(paths);
      const value = { agent: running ? "running" : "not_running", ...state };
      print(opts.json, value, () => formatState(value.agent, state));
      if (state.health.status !== "healthy") process.exitCode = 3;
    });

  const simple = (name: "start" | "stop" | "restart", description: string) =>
    dataDir(program.command(name))
      .description(description)
      .option("--json", "print JSON")
      .action(async (opts: DataDirOption) => runCommand(opts, `notebook.${name}`, {}));
  simple("start", "start the notebook server");
  simple("stop", "stop the notebook server (SIGTERM, then SIGKILL after the grace period)");
  simple("restart", "restart the notebook server and wait until it answers");

  dataDir(program.command("check"))
    .description("run every check now, including the deep kernel check (start a kernel, draw a plot)")
    .option("--json", "print JSON")
    .action(async (opts: DataDirOption) => runCommand(opts, "diagnose", {}));

  dataDir(program.command("password"))
    .description(
      "set the notebook password (from stdin, hashed at once, or a ready hash) and restart the server",
    )
    .option("--stdin", "read the password from the first line of stdin")
    .option("--hash <hash>", "a ready Jupyter hash (argon2:… or sha1:…)")
    .option("--json", "print JSON")
    .action(async (opts: DataDirOption & { stdin?: boolean; hash?: string }) => {
      if (Boolean(opts.stdin) === Boolean(opts.hash)) {
        throw new AgentError("NBF_INVALID_INPUT", "give exactly one of --stdin or --hash");
      }
      const paths = dataPaths(opts.dataDir);
      const state = await fetchState(paths.controlSocket);
      if (opts.hash) validateHash(opts.hash);
      const hash = opts.hash ?? (await hashForGeneration(await readPassword(process.stdin), state));
      await runCommand(opts, "password.set", { hash });
    });

  const certificate = program
    .command("certificate")
    .description("rotate or install the notebook's certificate");
  dataDir(certificate.command("rotate"))
    .description("make a new self-signed certificate on this machine and restart the server to serve it")
    .option("--hostname <name>", "extra DNS name (repeatable)", collect)
    .option("--cert-ip <addr>", "extra IP address (repeatable)", collect)
    .option("--json", "print JSON")
    .action(async (opts: DataDirOption & { hostname?: string[]; certIp?: string[] }) =>
      runCommand(opts, "certificate.rotate", {
        ...(opts.hostname ? { hostnames: opts.hostname } : {}),
        ...(opts.certIp ? { ips: opts.certIp } : {}),
      }),
    );
  dataDir(certificate.command("install"))
    .description("install an operator-provided certificate and key (checked: they match, not expired)")
    .requiredOption("--cert-file <file>", "PEM certificate")
    .requiredOption("--key-file <file>", "PEM private key")
    .option("--json", "print JSON")
    .action(async (opts: DataDirOption & { certFile: string; keyFile: string }) => {
      const paths = dataPaths(opts.dataDir);
      const info = await installCertificate(
        paths,
        await readFile(opts.certFile, "utf8"),
        await readFile(opts.keyFile, "utf8"),
      );
      if (await isAgentRunning(paths.controlSocket))
        await runCommand({ ...opts, json: true }, "notebook.restart", {}, true);
      print(opts.json, info, () => `installed certificate SHA-256 ${info.fingerprintSha256}`);
    });

  dataDir(program.command("logs"))
    .description("print the notebook server's (or the agent's) log")
    .option("-n, --lines <n>", "how many lines", integerIn("--lines", 1, 100_000), 100)
    .option(
      "--source <source>",
      "notebook or agent",
      oneOf("--source", ["notebook", "agent"] as const),
      "notebook",
    )
    .option("-f, --follow", "keep printing new lines (survives notebook restarts)")
    .action(
      async (opts: DataDirOption & { lines: number; source: "notebook" | "agent"; follow?: boolean }) => {
        const paths = dataPaths(opts.dataDir);
        const file = opts.source === "agent" ? paths.agentLog : paths.notebookLog;
        for (const line of await tailLines(file, opts.lines)) console.log(line);
        if (opts.follow) await follow(file);
      },
    );

  dataDir(program.command("events"))
    .description("print the agent's recent events (starts, crashes, restarts, certificate changes)")
    .option("-n, --lines <n>", "how many events", integerIn("--lines", 1, 1000), 50)
    .option("--json", "print JSON")
    .action(async (opts: DataDirOption & { lines: number }) => {
      const paths = dataPaths(opts.dataDir);
      const events = await fetchEvents(paths.controlSocket, opts.lines);
      print(opts.json, events, () =>
        events.map((e) => `${e.at} ${e.level} ${e.kind}: ${e.message}`).join("\n"),
      );
    });
}

function settingsFromFlags(opts: Record<string, unknown>): Partial<AgentSettings> {
  const out: Partial<AgentSettings> = {};
  if (opts.port !== undefined) out.port = opts.port as number;
  if (opts.ip !== undefined) out.ip = opts.ip as string;
  if (opts.notebookDir !== undefined) out.notebookDir = opts.notebookDir as string;
  if (opts.baseUrl !== undefined) out.baseUrl = opts.baseUrl as string;
  if (opts.runAs !== undefined) out.runAs = opts.runAs as string;
  if (opts.allowRoot) out.allowRoot = true;
  if (opts.hostname) out.hostnames = opts.hostname as string[];
  if (opts.certIp) out.ips = opts.certIp as string[];
  if (opts.publicUrl !== undefined) out.publicUrl = opts.publicUrl as string;
  return out;
}

async function runCommand<N extends CommandName>(
  opts: DataDirOption,
  name: N,
  params: CommandParamsOf<N>,
  quiet = false,
): Promise<void> {
  const paths = dataPaths(opts.dataDir);
  const outcome = await sendCommand(paths.controlSocket, name, params, (message) => {
    if (!opts.json && !quiet) console.error(`… ${message}`);
  });
  if (!outcome.ok) throw new AgentError(outcome.error.code as never, outcome.error.message);
  if (quiet) return;
  const data = outcome.data as AgentState | { lines: string[] } | undefined;
  print(opts.json, data ?? { ok: true }, () =>
    data && "health" in data ? formatState("running", data) : `${name}: done`,
  );
}

function hashForGeneration(plain: string, state: AgentState): Promise<string> {
  return hashForServer(plain, {
    generation: state.notebook.generation ?? "notebook6",
    version: state.notebook.version ?? "6.4.12",
  });
}

function formatState(agent: string, state: AgentState): string {
  const nb = state.notebook;
  const lines = [
    `agent:     ${agent}`,
    `notebook:  ${nb.state}${nb.pid ? ` (pid ${nb.pid})` : ""}, restarts ${nb.restarts}`,
    `url:       ${nb.url}`,
    `cert:      ${nb.certificate ? `SHA-256 ${nb.certificate.fingerprintSha256}, until ${nb.certificate.notAfter}` : "none"}`,
    `health:    ${state.health.status}`,
    ...state.health.checks.map((c) => `  ${c.status.padEnd(4)} ${c.name.padEnd(9)} ${c.message}`),
  ];
  if (nb.lastError) lines.push(`last error: ${nb.lastError}`);
  return lines.join("\n");
}

function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** Prints lines appended to a log; a truncated file (the size cap or a new server) is read from its start. */
async function follow(file: string): Promise<void> {
  let position = await stat(file).then(
    (s) => s.size,
    () => 0,
  );
  for (;;) {
    await sleep(250);
    const size = await stat(file).then(
      (s) => s.size,
      () => 0,
    );
    if (size < position) position = 0;
    if (size === position) continue;
    const handle = await open(file, "r");
    const buffer = Buffer.alloc(size - position);
    await handle.read(buffer, 0, buffer.length, position);
    await handle.close();
    position = size;
    process.stdout.write(buffer);
  }
}

/** `nbfleet notebook start|stop|restart|password|certificate NAME`: commands to the machine's agent. */
import type { CommandView } from "@nbfleet/shared";
import type { Command, OptionValues } from "commander";
import { certificateFromResult, certificateSummary } from "../certificate-view.js";
import { type ApiClient, ExitCode } from "../client.js";
import { type GlobalOptions, clientFrom } from "../context.js";
import { commandLine, printJson } from "../output.js";
import { collect, integerIn } from "../parse.js";
import { readSecretLine } from "../secret-input.js";
import { waitForCommand } from "../wait.js";

/** What the controller answered: the queued command, and for `password` the generated one. */
interface Sent {
  command: CommandView;
  password?: string | null;
}

export function registerNotebook(program: Command, globals: () => GlobalOptions): void {
  const notebook = program.command("notebook").description("the notebook server on a machine");

  for (const action of ["start", "stop", "restart"] as const) {
    agentCommand(
      notebook
        .command(`${action} <name>`)
        .description(`${action} the notebook server (waits for the agent's answer unless --no-wait)`),
      globals,
      async (client, name) => ({ command: await client.post<CommandView>(notebookPath(name, action)) }),
    );
  }

  registerCertificate(notebook, globals);

  agentCommand(
    notebook
      .command("password <name>")
      .description("set a new notebook password: generated and shown once, or from stdin")
      .option("--password-stdin", "read the new password from stdin"),
    globals,
    async (client, name, opts) => {
      const password = opts.passwordStdin ? await readSecretLine(process.stdin) : undefined;
      return client.post<Required<Sent>>(notebookPath(name, "password"), password ? { password } : {});
    },
  );
}

export function registerCertificate(notebook: Command, globals: () => GlobalOptions): void {
  agentCommand(
    notebook
      .command("certificate <name>")
      .description(
        "a new certificate: self-signed, made on the machine (the key never travels); on an ACME machine, renewed from the CA now",
      )
      .option("--hostname <name>", "self-signed: an extra DNS name for the certificate (repeatable)", collect)
      .option(
        "--cert-ip <addr>",
        "self-signed: an extra IP address for the certificate (repeatable)",
        collect,
      ),
    globals,
    async (client, name, opts) => ({
      command: await client.post<CommandView>(notebookPath(name, "certificate"), {
        ...(opts.hostname ? { hostnames: opts.hostname } : {}),
        ...(opts.certIp ? { ips: opts.certIp } : {}),
      }),
    }),
  );
}

/**
 * Gives `sub` its `--no-wait` and `--timeout` and an action that sends the command, waits for
 * the agent's answer unless --no-wait, prints the command, and sets the exit code from its end.
 */
function agentCommand(
  sub: Command,
  globals: () => GlobalOptions,
  send: (client: ApiClient, name: string, opts: OptionValues) => Promise<Sent>,
): void {
  sub
    .option("--no-wait", "return once the command is queued")
    .option("--timeout <sec>", "how long to wait", integerIn("--timeout", 1, 86_400), 120)
    .action(async (name: string, opts) => {
      const g = globals();
      const json = Boolean(g.json);
      const client = await clientFrom(g);
      const sent = await send(client, name, opts);
      const final = opts.wait ? await waitForCommand(client, sent.command, opts.timeout, json) : sent.command;
      if (json) printJson(sent.password === undefined ? final : { command: final, password: sent.password });
      else {
        console.log(commandLine(final));
        const served = final.state === "succeeded" ? certificateFromResult(final.result) : null;
        if (final.name === "certificate.rotate" && served)
          console.log(`serving: ${certificateSummary(served)}`);
        if (sent.password) console.log(`password: ${sent.password}   (shown once)`);
      }
      failOn(final);
    });
}

function notebookPath(name: string, route: string): string {
  return `/v1/vms/${encodeURIComponent(name)}/notebook/${route}`;
}

function failOn(command: CommandView): void {
  if (command.state === "failed") process.exitCode = ExitCode.failure;
  if (command.state === "timed_out" || command.state === "expired") process.exitCode = ExitCode.timeout;
}

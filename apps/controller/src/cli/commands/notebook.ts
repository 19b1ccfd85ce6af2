/** `nbfleet notebook start|stop|restart|password NAME`: commands to the machine's agent. */
import type { CommandView } from "@nbfleet/shared";
import type { Command } from "commander";
import { ExitCode } from "../client.js";
import { type GlobalOptions, clientFrom } from "../context.js";
import { commandLine, printJson } from "../output.js";
import { collect, integerIn } from "../parse.js";
import { readSecretLine } from "../secret-input.js";
import { waitForCommand } from "../wait.js";

export function registerNotebook(program: Command, globals: () => GlobalOptions): void {
  const notebook = program.command("notebook").description("the notebook server on a machine");

  for (const action of ["start", "stop", "restart"] as const) {
    notebook
      .command(`${action} <name>`)
      .description(`${action} the notebook server (waits for the agent's answer unless --no-wait)`)
      .option("--no-wait", "return once the command is queued")
      .option("--timeout <sec>", "how long to wait", integerIn("--timeout", 1, 86_400), 120)
      .action(async (name: string, opts) => {
        const g = globals();
        const client = await clientFrom(g);
        const queued = await client.post<CommandView>(
          `/v1/vms/${encodeURIComponent(name)}/notebook/${action}`,
        );
        const final = opts.wait
          ? await waitForCommand(client, queued, opts.timeout, Boolean(g.json))
          : queued;
        report(final, Boolean(g.json));
      });
  }

  registerCertificate(notebook, globals);

  notebook
    .command("password <name>")
    .description("set a new notebook password: generated and shown once, or from stdin")
    .option("--password-stdin", "read the new password from stdin")
    .option("--no-wait", "return once the command is queued")
    .option("--timeout <sec>", "how long to wait", integerIn("--timeout", 1, 86_400), 120)
    .action(async (name: string, opts) => {
      const g = globals();
      const client = await clientFrom(g);
      const password = opts.passwordStdin ? await readSecretLine(process.stdin) : undefined;
      const result = await client.post<{ command: CommandView; password: string | null }>(
        `/v1/vms/${encodeURIComponent(name)}/notebook/password`,
        password ? { password } : {},
      );
      const final = opts.wait
        ? await waitForCommand(client, result.command, opts.timeout, Boolean(g.json))
        : result.command;
      if (g.json) printJson({ command: final, password: result.password });
      else {
        console.log(commandLine(final));
        if (result.password) console.log(`password: ${result.password}   (shown once)`);
      }
      failOn(final);
    });
}

export function registerCertificate(notebook: Command, globals: () => GlobalOptions): void {
  notebook
    .command("certificate <name>")
    .description("rotate the notebook's self-signed certificate (made on the machine; the key never travels)")
    .option("--hostname <name>", "an extra DNS name for the certificate (repeatable)", collect)
    .option("--cert-ip <addr>", "an extra IP address for the certificate (repeatable)", collect)
    .option("--no-wait", "return once the command is queued")
    .option("--timeout <sec>", "how long to wait", integerIn("--timeout", 1, 86_400), 120)
    .action(async (name: string, opts) => {
      const g = globals();
      const client = await clientFrom(g);
      const queued = await client.post<CommandView>(
        `/v1/vms/${encodeURIComponent(name)}/notebook/certificate`,
        {
          ...(opts.hostname ? { hostnames: opts.hostname } : {}),
          ...(opts.certIp ? { ips: opts.certIp } : {}),
        },
      );
      const final = opts.wait ? await waitForCommand(client, queued, opts.timeout, Boolean(g.json)) : queued;
      report(final, Boolean(g.json));
    });
}

function report(command: CommandView, json: boolean): void {
  if (json) printJson(command);
  else console.log(commandLine(command));
  failOn(command);
}

function failOn(command: CommandView): void {
  if (command.state === "failed") process.exitCode = ExitCode.failure;
  if (command.state === "timed_out" || command.state === "expired") process.exitCode = ExitCode.timeout;
}

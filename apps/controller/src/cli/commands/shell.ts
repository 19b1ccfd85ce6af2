/**
 * `nbfleet shell NAME`: an interactive login shell on the machine (as the notebook's user),
 * through the controller; `nbfleet exec NAME -- CMD…`: one command, its output streamed, the
 * CLI exiting with the command's exit code. Both are admin-only and audited by the controller.
 *
 * Exit codes: the remote exit code (128+n when a signal n ended it); 255 when the session broke
 * (the agent vanished, idle timeout, controller shut down); before the session started, the
 * usual 1/2/3/4 (see main.ts).
 */
import os from "node:os";
import type { TerminalServerFrame } from "@nbfleet/shared";
import { shellWord } from "@nbfleet/shared/quote";
import type { Command } from "commander";
import { type GlobalOptions, clientFrom } from "../context.js";
import { RawTty } from "../raw-tty.js";
import { TerminalConnection } from "../terminal-client.js";

/** Like ssh: the session broke, so there is no remote exit code to give. */
export const SESSION_BROKEN = 255;

export function registerShell(program: Command, globals: () => GlobalOptions): void {
  program
    .command("shell <name>")
    .description("an interactive login shell on the machine, as the notebook's user (admin only)")
    .option("--session <id>", "attach again to a session you left (it keeps running for a while)")
    .action(async (name: string, opts: { session?: string }) => {
      const code = await runSession(globals(), {
        vm: name,
        tty: true,
        ...(opts.session ? { session: opts.session } : {}),
      });
      process.exitCode = code;
    });

  program
    .command("exec <name> <command...>")
    .description(
      "run one command on the machine and exit with its exit code (admin only); put -- before the command",
    )
    .option("-t, --tty", "run it in a pseudo-terminal (interactive programs); output is then one stream")
    .action(async (name: string, words: string[], opts: { tty?: boolean }) => {
      const code = await runSession(globals(), {
        vm: name,
        tty: Boolean(opts.tty),
        command: commandLine(words),
      });
      process.exitCode = code;
    });
}

/** One word is a shell command line as it is; several are quoted so each stays one argument. */
export function commandLine(words: string[]): string {
  if (words.length === 1) return words[0]!;
  return words.map(shellWord).join(" ");
}

interface SessionRequest {
  vm: string;
  tty: boolean;
  command?: string;
  session?: string;
}

async function runSession(globals: GlobalOptions, request: SessionRequest): Promise<number> {
  const client = await clientFrom(globals);
  const local = new RawTty();
  const interactive = request.tty && local.interactive;
  let outcome: {
    exit?: Extract<TerminalServerFrame, { type: "exit" }>;
    error?: { code: string; message: string };
  } = {};
  let closed!: (info: { code: number; reason: string }) => void;
  const ended = new Promise<{ code: number; reason: string }>((resolve) => {
    closed = resolve;
  });
  const connection = await TerminalConnection.open(
    {
      baseUrl: client.baseUrl,
      token: client.token,
      vm: request.vm,
      tty: request.tty,
      ...(request.command !== undefined ? { command: request.command } : {}),
      ...(request.session ? { session: request.session } : {}),
      ...(local.size() ?? {}),
    },
    {
      output: (channel, data) => (channel === "stderr" ? process.stderr : process.stdout).write(data),
      control: (frame) => {
        if (frame.type === "exit") outcome = { exit: frame };
        if (frame.type === "error") outcome = { error: frame };
      },
      closed: (code, reason) => closed({ code, reason }),
    },
  );
  const { session } = connection.session;

  const onSignal = (signal: NodeJS.Signals) => {
    // Leaving, not ending: the remote session keeps running and can be attached again.
    local.restore();
    connection.detach();
    process.stderr.write(
      `\r\nnbfleet: detached from terminal session ${session}; attach again with: nbfleet shell ${request.vm} --session ${session}\n`,
    );
    process.exit(128 + (os.constants.signals[signal] ?? 1));
  };
  const signals: NodeJS.Signals[] = interactive ? ["SIGTERM", "SIGHUP"] : ["SIGTERM", "SIGHUP", "SIGINT"];
  for (const signal of signals) process.on(signal, onSignal);
  const onResize = () => {
    const size = local.size();
    if (size) connection.resize(size.cols, size.rows);
  };
  if (interactive) {
    local.enter();
    process.stdout.on("resize", onResize);
  }
  const onInput = (data: Buffer) => connection.input(data);
  const onInputEnd = () => connection.eof();
  if (request.tty || !process.stdin.isTTY) {
    process.stdin.on("data", onInput);
    process.stdin.on("end", onInputEnd);
    process.stdin.resume();
  } else {
    // A command without a tty and a person at the keyboard: it gets no input, like `ssh host cmd < /dev/null`.
    connection.eof();
  }

  try {
    const close = await ended;
    if (outcome.exit) {
      const { exitCode, signal } = outcome.exit;
      return exitCode ?? 128 + ((signal ? os.constants.signals[signal as NodeJS.Signals] : undefined) ?? 0);
    }
    const why = outcome.error
      ? `${outcome.error.message} [${outcome.error.code}]`
      : `the connection to the controller ended (${close.code}${close.reason ? ` ${close.reason}` : ""}); ` +
        `the session may still run on the machine: nbfleet shell ${request.vm} --session ${session}`;
    local.restore();
    process.stderr.write(`\r\nnbfleet: ${why}\n`);
    return 255;
  } finally {
    local.restore();
    process.stdout.off("resize", onResize);
    process.stdin.off("data", onInput);
    process.stdin.off("end", onInputEnd);
    process.stdin.pause();
    for (const signal of signals) process.off(signal, onSignal);
  }
}

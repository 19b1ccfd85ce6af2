/**
 * `nbfleet shell NAME`: an interactive login shell on the machine (as the notebook's user),
 * through the controller; `nbfleet exec NAME -- CMD…`: one command, its output streamed, the
 * CLI exiting with the command's exit code. Both are admin-only and audited by the controller.
 *
 * Exit codes: the remote exit code (128+n when a signal n ended it); 255 when the session broke
 * (the agent vanished, idle timeout, controller shut down); before the session started, the
 * usual 1/2/3/4 (see main.ts). A shell whose connection drops (the network, a replica killed)
 * attaches again by itself for up to REATTACH_FOR_MS and redraws from the session's replay.
 */
import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { TerminalCloseCode, type TerminalServerFrame } from "@nbfleet/shared";
import { shellWord } from "@nbfleet/shared/quote";
import type { Command } from "commander";
import { CliError } from "../client.js";
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
    .option("--no-reattach", "when the connection drops, exit instead of attaching again")
    .action(async (name: string, opts: { session?: string; reattach: boolean }) => {
      const code = await runSession(globals(), {
        vm: name,
        tty: true,
        reattach: opts.reattach,
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
  /** Attach again by itself when the connection drops (shell only: a replay would repeat a command's output). */
  reattach?: boolean;
}

/** Close codes after which the session is over (or taken by another client): attaching again would not find it. */
const FINAL_CLOSES: number[] = [
  TerminalCloseCode.exited,
  TerminalCloseCode.goingAway,
  TerminalCloseCode.invalidFrame,
  TerminalCloseCode.agentGone,
  TerminalCloseCode.idle,
  TerminalCloseCode.takenOver,
  TerminalCloseCode.openFailed,
  TerminalCloseCode.ended,
];
/** How long a dropped shell keeps trying to attach again, and its pauses between tries. */
const REATTACH_FOR_MS = 30_000;
const REATTACH_FIRST_PAUSE_MS = 250;
const REATTACH_MAX_PAUSE_MS = 2000;
/** Ctrl-C and Ctrl-D typed while reattaching give up (in raw mode they reach no process then). */
const GIVE_UP_KEYS = [0x03, 0x04];
/** The replay is the screen so far: it is drawn on a clean terminal (what the console does too). */
const RESET_SCREEN = "\x1bc";

type Outcome = {
  exit?: Extract<TerminalServerFrame, { type: "exit" }>;
  error?: { code: string; message: string };
};

async function runSession(globals: GlobalOptions, request: SessionRequest): Promise<number> {
  const client = await clientFrom(globals);
  const local = new RawTty();
  const interactive = request.tty && local.interactive;
  let outcome: Outcome = {};
  let reattaching = false;
  let givenUp: (() => void) | null = null;
  /** A connection, and its own close (a failed try's late close cannot end the next one). */
  const open = async (session: string | undefined) => {
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
        ...(session ? { session } : {}),
        ...(local.size() ?? {}),
      },
      {
        output: (channel, data) => (channel === "stderr" ? process.stderr : process.stdout).write(data),
        control: (frame) => {
          if (frame.type === "exit") outcome = { exit: frame };
          if (frame.type === "error") outcome = { error: frame };
          if (frame.type === "session" && frame.reattached && reattaching) process.stdout.write(RESET_SCREEN);
        },
        closed: (code, reason) => closed({ code, reason }),
      },
    );
    return { connection, ended };
  };
  let { connection, ended } = await open(request.session);
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
  const onInput = (data: Buffer) => {
    if (!reattaching) connection.input(data);
    else if (GIVE_UP_KEYS.some((key) => data.includes(key))) givenUp?.();
  };
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
    for (;;) {
      const close = await ended;
      if (outcome.exit) {
        const { exitCode, signal } = outcome.exit;
        return exitCode ?? 128 + ((signal ? os.constants.signals[signal as NodeJS.Signals] : undefined) ?? 0);
      }
      if (!outcome.error && request.reattach && !FINAL_CLOSES.includes(close.code)) {
        process.stderr.write(
          `\r\nnbfleet: the connection to the controller dropped (${describeClose(close)}); attaching again to session ${session} (Ctrl-C gives up)…\r\n`,
        );
        reattaching = true;
        const again = await reattach(
          () => open(session),
          (giveUp) => {
            givenUp = giveUp;
          },
        );
        if ("connection" in again) {
          ({ connection, ended } = again.connection);
          reattaching = false;
          onResize();
          continue;
        }
        reattaching = false;
        local.restore();
        process.stderr.write(
          `\r\nnbfleet: ${again.why}; the session may still run on the machine: nbfleet shell ${request.vm} --session ${session}\n`,
        );
        return SESSION_BROKEN;
      }
      const why = outcome.error
        ? `${outcome.error.message} [${outcome.error.code}]`
        : `the connection to the controller ended (${describeClose(close)}); ` +
          `the session may still run on the machine: nbfleet shell ${request.vm} --session ${session}`;
      local.restore();
      process.stderr.write(`\r\nnbfleet: ${why}\n`);
      return SESSION_BROKEN;
    }
  } finally {
    local.restore();
    process.stdout.off("resize", onResize);
    process.stdin.off("data", onInput);
    process.stdin.off("end", onInputEnd);
    process.stdin.pause();
    for (const signal of signals) process.off(signal, onSignal);
  }
}

function describeClose(close: { code: number; reason: string }): string {
  return `${close.code}${close.reason ? ` ${close.reason}` : ""}`;
}

/**
 * Tries to attach again until it works, the controller refuses (the session is gone, the token
 * revoked: an answer, not an outage), REATTACH_FOR_MS pass, or the person gives up.
 */
async function reattach<T>(
  attach: () => Promise<T>,
  onGiveUp: (giveUp: () => void) => void,
): Promise<{ connection: T } | { why: string }> {
  const deadline = Date.now() + REATTACH_FOR_MS;
  const gaveUp = new AbortController();
  onGiveUp(() => gaveUp.abort());
  let lastProblem = "";
  for (let pause = REATTACH_FIRST_PAUSE_MS; ; pause = Math.min(pause * 2, REATTACH_MAX_PAUSE_MS)) {
    const wait = Math.min(pause, deadline - Date.now());
    if (wait <= 0)
      return { why: `could not attach again within ${REATTACH_FOR_MS / 1000} s (${lastProblem})` };
    try {
      await sleep(wait, undefined, { signal: gaveUp.signal });
    } catch {
      return { why: "gave up attaching again" };
    }
    try {
      return { connection: await attach() };
    } catch (error) {
      const refused = error instanceof CliError && error.code !== "NBF_CONTROLLER_UNREACHABLE";
      const problem = error instanceof CliError ? `${error.message} [${error.code}]` : String(error);
      if (refused && !isOutage(error)) return { why: `the controller refused to attach again: ${problem}` };
      lastProblem = problem;
    }
  }
}

/** A refusal that says the controller (or the balancer before it) is not serving right now. */
function isOutage(error: CliError): boolean {
  return /^HTTP_5\d\d$/.test(error.code) || error.code === "NBF_TERMINAL_CLOSED";
}

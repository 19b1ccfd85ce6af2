/** Waiting for the fleet to reach a state, with a spinner for people and nothing for --json. */
import { setTimeout as sleep } from "node:timers/promises";
import type { CommandView, VmView } from "@nbfleet/shared";
import ora, { type Ora } from "ora";
import { type ApiClient, CliError, ExitCode } from "./client.js";

const FINAL_COMMAND_STATES = new Set(["succeeded", "failed", "timed_out", "expired"]);

export function spinner(text: string, quiet: boolean): Ora | null {
  if (quiet || !process.stderr.isTTY) return null;
  return ora({ text, stream: process.stderr }).start();
}

export async function waitForCommand(
  client: ApiClient,
  command: CommandView,
  timeoutSec: number,
  quiet: boolean,
): Promise<CommandView> {
  const spin = spinner(`${command.name} on ${command.vmName}: ${command.state}`, quiet);
  const deadline = Date.now() + timeoutSec * 1000;
  let current = command;
  try {
    while (!FINAL_COMMAND_STATES.has(current.state)) {
      if (Date.now() > deadline) {
        throw new CliError(
          "NBF_WAIT_TIMEOUT",
          `gave up waiting after ${timeoutSec} s: command ${current.id} is still ${current.state}`,
          ExitCode.timeout,
        );
      }
      const waitSec = Math.max(1, Math.min(10, Math.ceil((deadline - Date.now()) / 1000)));
      current = await client.get<CommandView>(
        `/v1/commands/${encodeURIComponent(current.id)}?wait=${waitSec}`,
      );
      if (spin) spin.text = `${current.name} on ${current.vmName}: ${current.state}`;
    }
    return current;
  } finally {
    spin?.stop();
  }
}

export async function waitForVm(
  client: ApiClient,
  name: string,
  what: string,
  done: (vm: VmView) => boolean,
  timeoutSec: number,
  quiet: boolean,
): Promise<VmView> {
  const spin = spinner(`${name}: waiting until ${what}`, quiet);
  const deadline = Date.now() + timeoutSec * 1000;
  try {
    for (;;) {
      const vm = await client.get<VmView>(`/v1/vms/${encodeURIComponent(name)}`);
      if (spin)
        spin.text = `${name}: machine ${vm.state}, agent ${vm.agent.status}, notebook ${vm.notebook.state ?? "-"}, ${vm.health.status}`;
      if (done(vm)) return vm;
      if (vm.state === "failed") {
        throw new CliError(
          "NBF_VM_FAILED",
          `${name} failed: ${vm.error ?? "no reason given"}`,
          ExitCode.failure,
        );
      }
      if (Date.now() > deadline) {
        throw new CliError(
          "NBF_WAIT_TIMEOUT",
          `gave up waiting after ${timeoutSec} s until ${name} is ${what}`,
          ExitCode.timeout,
        );
      }
      await sleep(500);
    }
  } finally {
    spin?.stop();
  }
}

/** Ready for a person: notebook running and every check passing or at most warning. */
export function isServing(vm: VmView): boolean {
  return (
    vm.notebook.state === "running" && (vm.health.status === "healthy" || vm.health.status === "degraded")
  );
}

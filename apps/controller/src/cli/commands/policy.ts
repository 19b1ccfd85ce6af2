/** `nbfleet policy idle [show|set FILE|off]`: the idle shutdown policy. */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import type { IdlePolicy } from "../../operations/idle-policy.js";
import { CliError, ExitCode } from "../client.js";
import { type GlobalOptions, clientFrom } from "../context.js";
import { printJson, table } from "../output.js";

type IdlePolicyView = IdlePolicy & { updatedAt: string | null; updatedBy: string | null };

export function registerPolicy(program: Command, globals: () => GlobalOptions): void {
  const policy = program.command("policy").description("fleet policies");
  const idle = policy
    .command("idle")
    .description("stop notebooks or deallocate machines after N idle minutes");

  idle
    .command("show", { isDefault: true })
    .description("the idle policy")
    .action(async () => {
      const g = globals();
      const view = await (await clientFrom(g)).get<IdlePolicyView>("/v1/policies/idle");
      if (g.json) return printJson(view);
      print(view);
    });

  idle
    .command("set <file>")
    .description(
      'set the policy from a JSON file (or - for stdin): {"enabled": true, "rules": [{"labels": "team=a", "idleMinutes": 60, "action": "notebook.stop"}]}',
    )
    .action(async (file: string) => {
      const g = globals();
      const text = file === "-" ? await readStdin() : await readFile(file, "utf8");
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (error) {
        throw new CliError(
          "NBF_INVALID_JSON",
          `${file} is not JSON: ${(error as Error).message}`,
          ExitCode.usage,
        );
      }
      const view = await (await clientFrom(g)).request<IdlePolicyView>("PUT", "/v1/policies/idle", body);
      if (g.json) return printJson(view);
      print(view);
    });

  idle
    .command("off")
    .description("disable the idle policy (its rules are kept)")
    .action(async () => {
      const g = globals();
      const client = await clientFrom(g);
      const current = await client.get<IdlePolicyView>("/v1/policies/idle");
      const view = await client.request<IdlePolicyView>("PUT", "/v1/policies/idle", {
        enabled: false,
        rules: current.rules,
      });
      if (g.json) return printJson(view);
      print(view);
    });
}

function print(view: IdlePolicyView): void {
  console.log(
    `idle policy: ${view.enabled ? "enabled" : "disabled"}${view.updatedAt ? ` (set ${view.updatedAt} by ${view.updatedBy ?? "-"})` : ""}`,
  );
  if (view.rules.length === 0) return;
  console.log(
    table(
      ["RULE", "MACHINES", "IDLE AFTER", "ACTION"],
      view.rules.map((r, i) => [
        r.name ?? String(i + 1),
        r.labels ?? "all",
        `${r.idleMinutes} min`,
        r.action,
      ]),
    ),
  );
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

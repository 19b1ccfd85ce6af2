/**
 * `nbfleet agent artifacts`: the agent versions the controller keeps (size, sha256, how many
 * agents run each, the newest marked); `nbfleet agent publish FILE`: uploads an artifact built
 * with `pnpm build:agent --version V --out FILE`, which the controller checks and signs.
 */
import { readFile } from "node:fs/promises";
import { AGENT_ARTIFACTS_PATH } from "@nbfleet/shared";
import type { Command } from "commander";
import type {
  AgentArtifactList,
  AgentArtifactView,
  PublishedArtifact,
} from "../../api/agent-artifact/schemas.js";
import { CliError, ExitCode } from "../client.js";
import { type GlobalOptions, clientFrom } from "../context.js";
import { ago, printJson, table } from "../output.js";

export function registerAgent(program: Command, globals: () => GlobalOptions): void {
  const agent = program
    .command("agent")
    .description("agent artifacts: the versions guests install and upgrade to");

  agent
    .command("artifacts")
    .description("list the stored agent versions, newest first, with how many agents run each")
    .action(async () => {
      const g = globals();
      const result = await (await clientFrom(g)).get<AgentArtifactList>(AGENT_ARTIFACTS_PATH);
      if (g.json) return printJson(result);
      if (result.items.length === 0) {
        console.log("no agent artifacts stored; publish one with: nbfleet agent publish FILE");
        return;
      }
      console.log(
        table(
          ["VERSION", "SIZE", "SHA256", "AGENTS", "PUBLISHED"],
          result.items.map((a) => [
            a.newest ? `${a.version} (newest)` : a.version,
            size(a.bytes),
            a.sha256,
            String(a.agents),
            ago(a.publishedAt),
          ]),
        ),
      );
    });

  agent
    .command("publish")
    .description(
      "upload an agent artifact (pnpm build:agent --version V --out FILE); the controller checks and signs it",
    )
    .argument("<file>", "the artifact (.tar.gz)")
    .action(async (file: string) => {
      const g = globals();
      const bytes = await readFile(file).catch((error: NodeJS.ErrnoException) => {
        throw new CliError(
          "NBF_INVALID_INPUT",
          `cannot read ${file}: ${error.code ?? error.message}`,
          ExitCode.usage,
        );
      });
      const client = await clientFrom(g);
      const record = await client.upload<PublishedArtifact>(AGENT_ARTIFACTS_PATH, bytes, "application/gzip");
      if (g.json) return printJson(record);
      console.log(describe(record));
    });
}

function describe(record: PublishedArtifact): string {
  const what = record.created ? "published" : "already published with these bytes:";
  return [
    `agent ${record.version} ${what} ${size(record.bytes)}${record.newest ? ", the newest version" : ""}`,
    `sha256     ${record.sha256}`,
    `signature  ${record.signature}`,
    `roll it out: nbfleet op run agent.upgrade --version ${record.version} --all --canary 1`,
  ].join("\n");
}

function size(bytes: AgentArtifactView["bytes"]): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

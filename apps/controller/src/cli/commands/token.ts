/** `nbfleet token create|ls|revoke`: operator tokens (admin only). */
import { ROLES, type Role, type TokenView } from "@nbfleet/shared";
import { type Command, InvalidArgumentError } from "commander";
import { type GlobalOptions, clientFrom } from "../context.js";
import { printJson, table } from "../output.js";

export function registerToken(program: Command, globals: () => GlobalOptions): void {
  const token = program.command("token").description("operator API tokens");

  token
    .command("create <name>")
    .description("create a token; it is shown once")
    .requiredOption("--role <role>", `one of ${ROLES.join(", ")}`, (raw: string): Role => {
      if (!(ROLES as readonly string[]).includes(raw)) {
        throw new InvalidArgumentError(`--role must be one of ${ROLES.join(", ")}, got '${raw}'`);
      }
      return raw as Role;
    })
    .action(async (name: string, opts: { role: Role }) => {
      const g = globals();
      const created = await (await clientFrom(g)).post<{ token: string } & TokenView>("/v1/tokens", {
        name,
        role: opts.role,
      });
      if (g.json) return printJson(created);
      console.log(`token ${created.id} (${created.role}): ${created.token}   (shown once)`);
    });

  token
    .command("ls")
    .description("list tokens (never their secrets)")
    .action(async () => {
      const g = globals();
      const result = await (await clientFrom(g)).get<{ items: TokenView[] }>("/v1/tokens");
      if (g.json) return printJson(result.items);
      console.log(
        table(
          ["ID", "NAME", "ROLE", "CREATED"],
          result.items.map((t) => [t.id, t.name, t.role, t.createdAt]),
        ),
      );
    });

  token
    .command("revoke <id>")
    .description("revoke a token at once")
    .action(async (id: string) => {
      const g = globals();
      await (await clientFrom(g)).delete(`/v1/tokens/${encodeURIComponent(id)}`);
      if (g.json) return printJson({ revoked: id });
      console.log(`revoked ${id}`);
    });
}

import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
/** `GET /v1/commands/{id}`, optionally waiting (long poll) until the command is finished. */
import { CommandView } from "@nbfleet/shared";
import { Type } from "@sinclair/typebox";
import { NbfError } from "../../errors.js";
import { Errors } from "../schemas.js";
import { toCommandView } from "../views.js";

export const commandsPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { commands } = app.nbfleet;
  app.get(
    "/v1/commands/:id",
    {
      config: { role: "viewer" },
      schema: {
        tags: ["commands"],
        summary: "Show a command; with wait=N, answer when it finishes or after N seconds",
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) }),
        querystring: Type.Object(
          { wait: Type.Optional(Type.Number({ minimum: 0, maximum: 60 })) },
          { additionalProperties: false },
        ),
        response: { 200: CommandView, ...Errors },
      },
    },
    async (request) => {
      const command = await commands.waitFor(request.params.id, (request.query.wait ?? 0) * 1000);
      if (!command) throw new NbfError("NBF_COMMAND_NOT_FOUND", { id: request.params.id });
      return toCommandView(command, await commands.agentConnected(command.vmName));
    },
  );
};

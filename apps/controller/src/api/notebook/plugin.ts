import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
/**
 * Notebook routes: start/stop/restart and password, each a command to the VM's agent
 * (202 with the command; when the agent is offline the command waits until it expires).
 */
import { CommandView } from "@nbfleet/shared";
import { Type } from "@sinclair/typebox";
import type { NotebookCommand } from "../../fleet/vm-service.js";
import { CommandOptions, Errors, NameParams } from "../schemas.js";
import { toCommandView } from "../views.js";

const ACTIONS = ["start", "stop", "restart"] as const;

const CommandBody = Type.Union([Type.Object(CommandOptions, { additionalProperties: false }), Type.Null()]);
const PasswordBody = Type.Union([
  Type.Object(
    {
      password: Type.Optional(
        Type.String({
          minLength: 8,
          maxLength: 1024,
          description: "the new password; generated when absent",
        }),
      ),
      ...CommandOptions,
    },
    { additionalProperties: false },
  ),
  Type.Null(),
]);
const CertificateBody = Type.Union([
  Type.Object(
    {
      hostnames: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { maxItems: 32 })),
      ips: Type.Optional(Type.Array(Type.String({ minLength: 2, maxLength: 45 }), { maxItems: 32 })),
      ...CommandOptions,
    },
    { additionalProperties: false },
  ),
  Type.Null(),
]);
const PasswordResult = Type.Object({
  command: CommandView,
  password: Type.Union([Type.String(), Type.Null()], {
    description: "the generated password, shown only here; null when you gave one",
  }),
});

export const notebookPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { vms, commands } = app.nbfleet;

  for (const action of ACTIONS) {
    app.post(
      `/v1/vms/:name/notebook/${action}`,
      {
        config: { role: "operator" },
        schema: {
          tags: ["notebook"],
          summary: `${action[0]!.toUpperCase()}${action.slice(1)} the notebook server (a command to the agent)`,
          params: NameParams,
          body: CommandBody,
          response: { 202: CommandView, ...Errors },
        },
      },
      async (request, reply) => {
        const { command, delivered } = await vms.notebookCommand(
          request.params.name,
          `notebook.${action}` as NotebookCommand,
          request.body ?? {},
        );
        reply.status(202);
        return toCommandView(command, delivered || (await commands.agentConnected(command.vmName)));
      },
    );
  }

  app.post(
    "/v1/vms/:name/notebook/password",
    {
      config: { role: "operator" },
      schema: {
        tags: ["notebook"],
        summary: "Set the notebook password (only its argon2 hash reaches the agent)",
        params: NameParams,
        body: PasswordBody,
        response: { 202: PasswordResult, ...Errors },
      },
    },
    async (request, reply) => {
      const { password, ...options } = request.body ?? {};
      const result = await vms.setPassword(request.params.name, password, options);
      reply.status(202);
      return {
        command: toCommandView(
          result.command.command,
          result.command.delivered || (await commands.agentConnected(request.params.name)),
        ),
        password: result.password,
      };
    },
  );

  app.post(
    "/v1/vms/:name/notebook/certificate",
    {
      config: { role: "operator" },
      schema: {
        tags: ["notebook"],
        summary: "Rotate the notebook's certificate (made on the guest; the key never travels)",
        params: NameParams,
        body: CertificateBody,
        response: { 202: CommandView, ...Errors },
      },
    },
    async (request, reply) => {
      const { hostnames, ips, ...options } = request.body ?? {};
      const { command, delivered } = await vms.rotateCertificate(
        request.params.name,
        { ...(hostnames ? { hostnames } : {}), ...(ips ? { ips } : {}) },
        options,
      );
      reply.status(202);
      return toCommandView(command, delivered || (await commands.agentConnected(command.vmName)));
    },
  );
};

import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
/**
 * `POST /v1/vms/{name}/bootstrap-token` (admin): a new bootstrap token for a machine whose agent
 * never got in (its token expired, or the agent lost both token and credential). Shown once;
 * any earlier token of the VM stops working. The VM's credential keeps working until the agent
 * trades the new token for another.
 */
import { Type } from "@sinclair/typebox";
import { NbfError } from "../../errors.js";
import { issueBootstrapToken } from "../../fleet/bootstrap-token.js";
import { Errors, NameParams } from "../schemas.js";

const IssuedToken = Type.Object({
  vmName: Type.String(),
  token: Type.String({ description: "the bootstrap token (nbfb_…), shown only here" }),
  expiresAt: Type.String({ format: "date-time" }),
  note: Type.String(),
});

export const bootstrapTokenPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { store, bus, settings } = app.nbfleet;

  app.post(
    "/v1/vms/:name/bootstrap-token",
    {
      config: { role: "admin" },
      schema: {
        tags: ["vms"],
        summary: "Issue a new bootstrap token for the VM's agent (shown once)",
        params: NameParams,
        response: { 201: IssuedToken, ...Errors },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      const vm = await store.vms.require(name);
      if (vm.state === "deleting") {
        throw new NbfError("NBF_VM_BUSY", { name, state: vm.state, action: "issuing a bootstrap token" });
      }
      const issued = await issueBootstrapToken(store.agentSecrets, name, settings.bootstrapTokenTtlSec);
      bus.emit({
        vmName: name,
        kind: "agent.bootstrap_token",
        message: `a new bootstrap token for ${name} was issued by ${request.principal?.id}; it expires at ${issued.expiresAt}`,
      });
      reply.status(201);
      return {
        vmName: name,
        token: issued.token,
        expiresAt: issued.expiresAt,
        note:
          "give it to the agent in a file only it can read (nbfleet-agent --bootstrap-token-file FILE, " +
          "or NBFLEET_BOOTSTRAP_TOKEN) and restart the agent; it works until the agent has connected " +
          `with the credential it gets, or until ${issued.expiresAt} if unused`,
      };
    },
  );
};

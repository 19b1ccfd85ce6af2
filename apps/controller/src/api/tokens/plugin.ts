import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
/** Operator tokens (admin only): create (the token is shown once), list, revoke. */
import { Role, TokenView } from "@nbfleet/shared";
import { Type } from "@sinclair/typebox";
import { hashSecret, newOperatorToken } from "../../auth/secrets.js";
import { NbfError } from "../../errors.js";
import { newId } from "../../store/ids.js";
import { Errors } from "../schemas.js";

const CreateTokenBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 128 }), role: Role },
  { additionalProperties: false },
);
const CreatedToken = Type.Composite([
  TokenView,
  Type.Object({ token: Type.String({ description: "the bearer token, shown only here" }) }),
]);

export const tokensPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { store, bus, streams } = app.nbfleet;

  app.post(
    "/v1/tokens",
    {
      config: { role: "admin" },
      schema: {
        tags: ["tokens"],
        summary: "Create a token",
        body: CreateTokenBody,
        response: { 201: CreatedToken, ...Errors },
      },
    },
    async (request, reply) => {
      const token = newOperatorToken();
      const record = {
        id: newId("tok"),
        name: request.body.name,
        role: request.body.role,
        createdAt: new Date().toISOString(),
      };
      await store.tokens.insert({ ...record, hash: hashSecret(token) });
      bus.emit({
        vmName: null,
        kind: "token.created",
        message: `token ${record.id} (${record.name}, ${record.role}) created by ${request.principal?.id}`,
      });
      reply.status(201);
      return { ...record, token };
    },
  );

  app.get(
    "/v1/tokens",
    {
      config: { role: "admin" },
      schema: {
        tags: ["tokens"],
        summary: "List tokens",
        response: { 200: Type.Object({ items: Type.Array(TokenView) }), ...Errors },
      },
    },
    async () => ({ items: await store.tokens.list() }),
  );

  app.delete(
    "/v1/tokens/:id",
    {
      config: { role: "admin" },
      schema: {
        tags: ["tokens"],
        summary: "Revoke a token",
        description:
          "Refused at once by this controller; another replica may still accept it for up to 2 s (known tokens are remembered that long).",
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) }),
        response: { 204: Type.Null(), ...Errors },
      },
    },
    async (request, reply) => {
      const token = await store.tokens.get(request.params.id);
      if (!token) throw new NbfError("NBF_TOKEN_NOT_FOUND", { id: request.params.id });
      if (token.role === "admin" && (await store.tokens.countByRole("admin")) <= 1) {
        throw new NbfError("NBF_TOKEN_LAST_ADMIN", { id: token.id });
      }
      await store.tokens.delete(token.id);
      // Its console sessions already fail (they join the token); this removes their rows.
      await store.sessions.deleteByToken(token.id);
      // Its open streams (shells, event streams, log follows) end here now, on other replicas
      // when they read this event.
      bus.emit({
        vmName: null,
        kind: "token.revoked",
        message: `token ${token.id} (${token.name}) revoked`,
        data: { tokenId: token.id },
      });
      streams.revoke({ kind: "token", id: token.id });
      return reply.status(204).send(null);
    },
  );
};

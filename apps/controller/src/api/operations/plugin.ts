/**
 * Bulk operations: `POST /v1/operations` (create and start), `GET /v1/operations` (newest
 * first, cursor pages), `GET /v1/operations/{id}` (with a page of targets), `POST
 * /v1/operations/{id}/cancel`. Progress is streamed as `operation.*` events on `GET /v1/events`.
 * Operators run operations; controller.trust alone needs an admin.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "@sinclair/typebox";
import { roleAllows } from "../../auth/roles.js";
import { NbfError } from "../../errors.js";
import type { OperationSpec } from "../../operations/engine.js";
import type { Selector } from "../../operations/selector.js";
import { TARGET_STATES, type TargetRecord, type TargetState } from "../../store/operation-targets-repo.js";
import { OPERATION_STATES, type OperationRecord } from "../../store/operations-repo.js";
import { decodeCursor, encodeCursor } from "../cursor.js";
import { Errors, plainJson } from "../schemas.js";
import {
  CreateOperationBody,
  CreatedOperation,
  OperationDetail,
  OperationList,
  type OperationView,
  type TargetView,
} from "./schemas.js";

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });

export const operationsPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { operations } = app.nbfleet;

  app.post(
    "/v1/operations",
    {
      config: { role: "operator" },
      schema: {
        tags: ["operations"],
        summary: "Run an action over many VMs (concurrency, error budget, rolling health gate)",
        body: CreateOperationBody,
        response: { 201: CreatedOperation, ...Errors },
      },
      serializerCompiler: plainJson,
    },
    async (request, reply) => {
      // Who agents trust is who can command them, terminals included (an admin's power).
      const role = request.principal?.role;
      if (request.body.action === "controller.trust" && role && !roleAllows(role, "admin")) {
        throw new NbfError("NBF_FORBIDDEN", {
          role,
          action: "POST /v1/operations with action controller.trust",
          needed: "admin",
        });
      }
      const created = await operations.create(request.body, request.principal?.name ?? null);
      reply.status(201);
      // The answer may carry new passwords: never cached anywhere.
      if (created.passwords) reply.header("cache-control", "no-store");
      return {
        operation: toView(created.operation, await operations.counts(created.operation)),
        passwords: created.passwords,
      };
    },
  );

  app.get(
    "/v1/operations",
    {
      config: { role: "viewer" },
      schema: {
        tags: ["operations"],
        summary: "List operations, newest first",
        querystring: Type.Object(
          {
            state: Type.Optional(Type.Union(OPERATION_STATES.map((s) => Type.Literal(s)))),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
            cursor: Type.Optional(Type.String({ maxLength: 512 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: OperationList, ...Errors },
      },
      serializerCompiler: plainJson,
    },
    async (request) => {
      const { state, limit = 50, cursor } = request.query;
      const before = cursor === undefined ? undefined : decodeCursor(cursor, "string");
      const rows = await app.nbfleet.store.operations.list(limit + 1, { state, before });
      const page = rows.slice(0, limit);
      const items = await Promise.all(page.map(async (op) => toView(op, await operations.counts(op))));
      return { items, nextCursor: rows.length > limit ? encodeCursor(page.at(-1)!.id) : null };
    },
  );

  app.get(
    "/v1/operations/:id",
    {
      config: { role: "viewer" },
      schema: {
        tags: ["operations"],
        summary: "Show an operation with a page of its targets (in rollout order)",
        params: IdParams,
        querystring: Type.Object(
          {
            targetsLimit: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, default: 100 })),
            targetsCursor: Type.Optional(Type.String({ maxLength: 512 })),
            targetState: Type.Optional(Type.Union(TARGET_STATES.map((s) => Type.Literal(s)))),
          },
          { additionalProperties: false },
        ),
        response: { 200: OperationDetail, ...Errors },
      },
      serializerCompiler: plainJson,
    },
    async (request) => {
      const { targetsLimit = 100, targetsCursor, targetState } = request.query;
      const operation = await operations.require(request.params.id);
      const counts = await operations.counts(operation);
      const afterSeq = targetsCursor === undefined ? undefined : decodeCursor(targetsCursor, "number");
      const rows =
        targetsLimit === 0
          ? []
          : await operations.targets.list(operation.id, {
              afterSeq,
              state: targetState,
              limit: targetsLimit + 1,
            });
      const page = rows.slice(0, targetsLimit);
      return {
        ...toView(operation, counts),
        targets: {
          items: page.map(toTargetView),
          nextCursor: rows.length > targetsLimit ? encodeCursor(page.at(-1)!.seq) : null,
        },
      };
    },
  );

  app.post(
    "/v1/operations/:id/cancel",
    {
      config: { role: "operator" },
      schema: {
        tags: ["operations"],
        summary: "Cancel: no new target starts; pending targets become cancelled, running ones finish",
        params: IdParams,
        body: Type.Union([Type.Object({}, { additionalProperties: false }), Type.Null()]),
        response: { 200: OperationDetail, ...Errors },
      },
      serializerCompiler: plainJson,
    },
    async (request) => {
      const operation = await operations.cancel(request.params.id);
      // Counted: the cancelled targets are not in a summary yet.
      return {
        ...toView(operation, await operations.counts(operation, { exact: true })),
        targets: { items: [], nextCursor: null },
      };
    },
  );
};

export function toView(op: OperationRecord, counts: Record<TargetState, number>): OperationView {
  const spec = op.params as OperationSpec;
  return {
    id: op.id,
    action: op.kind as OperationView["action"],
    state: op.state,
    selector: op.selector as Selector,
    total: spec.total,
    counts,
    maxConcurrency: op.maxConcurrency,
    maxErrors: op.maxErrors,
    requested: { maxConcurrency: spec.maxConcurrency, maxErrors: spec.maxErrors },
    rolling: spec.rolling,
    upgrade: spec.upgrade
      ? {
          version: spec.upgrade.version,
          timeoutSec: spec.upgrade.timeoutSec,
          canary: spec.upgrade.canary,
          canarySoakSec: spec.upgrade.canarySoakSec,
        }
      : null,
    reason: op.reason,
    createdBy: op.createdBy,
    createdAt: op.createdAt,
    updatedAt: op.updatedAt,
    finishedAt: op.finishedAt,
    cancelRequestedAt: op.cancelRequestedAt,
  };
}

function toTargetView(target: TargetRecord): TargetView {
  return {
    seq: target.seq,
    vmName: target.vmName,
    state: target.state,
    commandId: target.commandId,
    startedAt: target.startedAt,
    finishedAt: target.finishedAt,
    error: target.error,
  };
}

import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
/** VM routes: create, list (label expression/state/health filters, sorts, keyset cursor pages), show, delete, machine actions. */
import { CommandView, OverallHealth, VmCertificateRequest, VmList, VmState, VmView } from "@nbfleet/shared";
import { Type } from "@sinclair/typebox";
import type { MachineAction } from "../../fleet/vm-service.js";
import type { VmRecord } from "../../store/vms-repo.js";
import { Errors, Labels, NameParams, VmName, plainJson } from "../schemas.js";
import { toCommandView, toVmView } from "../views.js";
import {
  CertExpiresWithinDays,
  SortQuery,
  certNotAfterBefore,
  decodeListCursor,
  encodeListCursor,
  labelTerms,
  sortOf,
} from "./list-query.js";

const CreateVmBody = Type.Object(
  {
    name: VmName,
    labels: Type.Optional(Labels),
    password: Type.Optional(
      Type.String({
        minLength: 8,
        maxLength: 1024,
        description: "the notebook password; generated when absent",
      }),
    ),
    provider: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    /** acme: a certificate from NBFLEET_ACME_DIRECTORY for `hostname` (else the provider's public name). */
    certificate: Type.Optional(VmCertificateRequest),
  },
  { additionalProperties: false },
);

const CreatedVm = Type.Object({
  vm: VmView,
  password: Type.Union([Type.String(), Type.Null()], {
    description: "the generated notebook password, shown only here; null when you gave one",
  }),
  passwordCommand: CommandView,
});

const ListQuery = Type.Object(
  {
    label: Type.Optional(
      Type.Array(Type.String({ pattern: "^[^=]+=.*$" }), {
        description: "key=value, repeatable (all must match)",
      }),
    ),
    ...SortQuery,
    state: Type.Optional(VmState),
    health: Type.Optional(OverallHealth),
    agentVersion: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description: "only VMs whose agent last reported this version",
      }),
    ),
    certExpiresWithinDays: Type.Optional(CertExpiresWithinDays),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    cursor: Type.Optional(Type.String({ maxLength: 512 })),
  },
  { additionalProperties: false },
);

const MACHINE_ACTIONS: MachineAction[] = ["start", "stop", "restart"];

export const vmsPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { store, vms, gateway, commands } = app.nbfleet;
  const newestVersion = async () => (await app.nbfleet.artifacts.newest())?.version ?? null;
  const viewOf = async (vm: VmRecord) =>
    toVmView(
      vm,
      gateway.live(vm.name),
      await store.agentSecrets.bootstrapOf(vm.name),
      Date.now(),
      await newestVersion(),
    );

  app.post(
    "/v1/vms",
    {
      config: { role: "operator" },
      schema: {
        tags: ["vms"],
        summary: "Create a VM",
        body: CreateVmBody,
        response: { 201: CreatedVm, ...Errors },
      },
    },
    async (request, reply) => {
      const created = await vms.create(request.body);
      reply.status(201);
      return {
        vm: await viewOf(created.vm),
        password: created.password,
        passwordCommand: toCommandView(created.passwordCommand.command, created.passwordCommand.delivered),
      };
    },
  );

  app.get(
    "/v1/vms",
    {
      config: { role: "viewer" },
      serializerCompiler: plainJson,
      schema: {
        tags: ["vms"],
        summary: "List VMs",
        querystring: ListQuery,
        response: { 200: VmList, ...Errors },
      },
    },
    async (request) => {
      const {
        label,
        labels,
        state,
        health,
        agentVersion,
        certExpiresWithinDays,
        limit = 100,
        cursor,
      } = request.query;
      const sort = sortOf(request.query.sort, request.query.order);
      const terms = labelTerms(labels, label ?? []);
      await store.writer.flushChanges();
      // Two reads side by side (on PostgreSQL, two pooled connections): one round trip less.
      const [rows, newest] = await Promise.all([
        store.vms.list({
          labelTerms: terms,
          state,
          health,
          agentVersion,
          ...(certExpiresWithinDays === undefined
            ? {}
            : { certNotAfterBefore: certNotAfterBefore(certExpiresWithinDays) }),
          sort,
          afterRow: cursor === undefined ? undefined : decodeListCursor(cursor, sort),
          limit: limit + 1,
        }),
        newestVersion(),
      ]);
      const page = rows.slice(0, limit);
      const tokens = await store.agentSecrets.bootstrapsOf(page.map((vm) => vm.name));
      const now = Date.now();
      return {
        items: page.map((vm) =>
          toVmView(vm, gateway.live(vm.name), tokens.get(vm.name) ?? null, now, newest),
        ),
        nextCursor: rows.length > limit ? encodeListCursor(sort, page.at(-1)!) : null,
      };
    },
  );

  app.get(
    "/v1/vms/:name",
    {
      config: { role: "viewer" },
      serializerCompiler: plainJson,
      schema: {
        tags: ["vms"],
        summary: "Show a VM",
        params: NameParams,
        response: { 200: VmView, ...Errors },
      },
    },
    async (request) => {
      await store.writer.flushChanges();
      const vm = await store.vms.require(request.params.name);
      return viewOf(vm);
    },
  );

  app.delete(
    "/v1/vms/:name",
    {
      config: { role: "operator" },
      schema: {
        tags: ["vms"],
        summary: "Delete a VM and everything it left",
        params: NameParams,
        response: { 204: Type.Null(), ...Errors },
      },
    },
    async (request, reply) => {
      await vms.delete(request.params.name);
      return reply.status(204).send(null);
    },
  );

  for (const action of MACHINE_ACTIONS) {
    app.post(
      `/v1/vms/:name/${action}`,
      {
        config: { role: "operator" },
        schema: {
          tags: ["vms"],
          summary: `${action[0]!.toUpperCase()}${action.slice(1)} the machine`,
          params: NameParams,
          response: { 200: VmView, ...Errors },
        },
      },
      async (request) => {
        const vm = await vms.machineAction(request.params.name, action);
        return viewOf(vm);
      },
    );
  }

  app.get(
    "/v1/vms/:name/commands",
    {
      config: { role: "viewer" },
      schema: {
        tags: ["commands"],
        summary: "The VM's latest commands, newest first",
        params: NameParams,
        querystring: Type.Object({
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
        }),
        response: { 200: Type.Object({ items: Type.Array(CommandView) }), ...Errors },
      },
    },
    async (request) => {
      await store.vms.require(request.params.name);
      const items = await commands.listForVm(request.params.name, request.query.limit ?? 50);
      const connected = await commands.agentConnected(request.params.name);
      return { items: items.map((c) => toCommandView(c, connected)) };
    },
  );
};
